// The official VSCP tcp/ip client for Node (node-vscp-tcp, npm) against a running server:
// two clients log in, one sends events (as a string and as a vscp.Event object), the other
// reads them with chkdata/retr and then in the receive loop, through a filter. Every reply is
// checked; the process exits non-zero on the first mismatch, a rejected command or after
// DEADLINE_MS. Run by .ci/node-vscp-tcp: `node vscp-tcp-client.js HOST PORT`.
'use strict';

const assert = require('node:assert/strict');
const vscp = require('node-vscp');
const VscpTcpClient = require('node-vscp-tcp');

const [host, portText] = process.argv.slice(2);
const port = Number(portText);
if (!host || !Number.isInteger(port)) {
  console.error('usage: node vscp-tcp-client.js HOST PORT');
  process.exit(2);
}
const DEADLINE_MS = 60000;
// A promise nothing will settle leaves node with no work: it would exit 0 without this.
process.exitCode = 1;
setTimeout(() => {
  console.error(`FAIL: not done after ${DEADLINE_MS} ms`);
  process.exit(1);
}, DEADLINE_MS);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `probe` until it returns a truthy value, or fails after `ms`.
async function eventually(what, ms, probe) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function login(user, password) {
  const c = new VscpTcpClient();
  c.on('error', (e) => console.error('client error:', e && e.message));
  const greeting = await c.connect({ host, port, timeout: 5000 });
  // The greeting ends with "+OK - Success." (the seed's test run, tcp.md §3).
  assert.equal(greeting.response.at(-1), '+OK - Success.', 'greeting');
  const u = await c.sendCommand({ command: 'user', argument: user });
  assert.match(u.response.at(-1), /^\+OK/, 'user');
  const p = await c.sendCommand({ command: 'pass', argument: password });
  assert.match(p.response.at(-1), /^\+OK/, 'pass');
  return c;
}

async function main() {
  // A wrong password is a -OK line (the client rejects the promise), then the server closes
  // (tcp.md T2).
  {
    const c = new VscpTcpClient();
    await c.connect({ host, port, timeout: 5000 });
    const closed = new Promise((resolve) => c.on('disconnect', resolve));
    await c.sendCommand({ command: 'user', argument: 'admin' });
    await assert.rejects(c.sendCommand({ command: 'pass', argument: 'not-the-password' }),
      (r) => r.response.at(-1) === '-OK - Invalid username or password.', 'wrong password');
    await closed;
  }

  const receiver = await login('admin', 'secret');
  const sender = await login('admin', 'secret');

  // Facts about the server, through the client's own parsers.
  const version = await receiver.getRemoteVersion();
  assert.ok(Number(version.major) >= 0 && version.minor !== undefined, `version ${JSON.stringify(version)}`);
  const chid = await receiver.getChannelID();
  assert.ok(Number.isInteger(chid) && chid >= 0, `chid ${chid}`);
  const guid = await receiver.getGUID();
  assert.match(String(guid), /^([0-9A-F]{2}:){15}[0-9A-F]{2}$/i, `guid ${guid}`);
  // Both clients in the server's client list, through the client's own parser.
  const ifs = await receiver.getInterfaces();
  assert.ok(ifs.length >= 2, `interface list ${JSON.stringify(ifs)}`);
  const me = ifs.find((i) => i.index === chid);
  assert.ok(me && me.type === 5 && me.guid === guid && /^tcp\/ip client /.test(me.name),
    `own line in ${JSON.stringify(ifs)}`);
  // The client keeps the last 19 characters of "Started at 2026-12-05T08:14:05Z" (tcp.md's
  // format, with the Z): "026-12-05T08:14:05Z".
  assert.ok(ifs.every((i) => /^\d{3}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(i.started)), JSON.stringify(ifs));
  assert.equal(await receiver.noop(), true, 'noop');
  assert.equal((await receiver.clearQueue()).response.at(-1).slice(0, 3), '+OK', 'clrall');

  // 1. The seed's event, sent as a string, read back with chkdata and retr.
  const seedEvent = '0,20,3,,,,0:1:2:3:4:5:6:7:8:9:10:11:12:13:14:15,0,1,35';
  assert.equal(await sender.sendEvent({ event: seedEvent }), true, 'send (string)');
  const pending = await eventually('chkdata to count the event', 5000,
    async () => (await receiver.getPendingEventCount()) >= 1 && true);
  assert.ok(pending);
  const got = await receiver.getEvents({ count: 1 });
  assert.equal(got.length, 1, 'retr 1');
  assert.equal(got[0].vscpClass, 20);
  assert.equal(got[0].vscpType, 3);
  assert.deepEqual(Array.from(got[0].vscpData), [0, 1, 35]);
  // GUID tokens are hex, so "10" is 0x10 (docs/protocol.md: tcp.md's T4 contradicts its T5).
  assert.equal(got[0].vscpGuid.toUpperCase(), '00:01:02:03:04:05:06:07:08:09:10:11:12:13:14:15');
  assert.equal(await receiver.getPendingEventCount(), 0, 'queue empty after retr');

  // 2. A filter (class 10 only), then the receive loop: the class 20 event is filtered out, the
  //    class 10 event (sent as a vscp.Event object) arrives with its fields.
  const filterOk = await receiver.setFilter({ filterPriority: 0, filterClass: 10, filterType: 0,
    filterGuid: '00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00' });
  assert.match(filterOk.response.at(-1), /^\+OK/, 'setfilter');
  const maskOk = await receiver.setMask({ maskPriority: 0, maskClass: 0xffff, maskType: 0,
    maskGuid: '00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00' });
  assert.match(maskOk.response.at(-1), /^\+OK/, 'setmask');

  const received = [];
  receiver.addEventListener((e) => received.push(e));
  const loop = await receiver.startRcvLoop();
  assert.match(loop.response.at(-1), /^\+OK/, 'rcvloop');

  assert.equal(await sender.sendEvent({ event: '0,20,3,,,,-,0,1,35' }), true, 'send (filtered out)');
  const measurement = new vscp.Event({
    vscpClass: 10, vscpType: 6, vscpHead: 0,
    vscpGuid: 'FF:FF:FF:FF:FF:FF:FF:FE:B8:27:EB:40:59:96:00:01',
    vscpData: [0x48, 0x35, 0x31, 0x2e, 0x39],
  });
  assert.equal(await sender.sendEvent({ event: measurement }), true, 'send (vscp.Event)');
  await eventually('the class 10 event in the receive loop', 5000, async () => received.length >= 1);
  await sleep(300); // a class 20 event would have arrived by now, in order, before the class 10 one
  assert.equal(received.length, 1, `only the filtered event arrives: ${JSON.stringify(received)}`);
  const ev = received[0];
  assert.equal(ev.vscpClass, 10);
  assert.equal(ev.vscpType, 6);
  assert.equal(ev.vscpGuid.toUpperCase(), 'FF:FF:FF:FF:FF:FF:FF:FE:B8:27:EB:40:59:96:00:01');
  assert.deepEqual(Array.from(ev.vscpData), [0x48, 0x35, 0x31, 0x2e, 0x39]);

  const left = await receiver.stopRcvLoop();
  assert.match(left.response.at(-1), /^\+OK/, 'quitloop');
  assert.equal(await receiver.noop(), true, 'noop after quitloop');

  await sender.disconnect();
  await receiver.disconnect();
  console.log('node-vscp-tcp: all checks passed');
  process.exit(0);
}

main().catch((e) => {
  console.error('FAIL:', e && (e.stack || JSON.stringify(e)));
  process.exit(1);
});
