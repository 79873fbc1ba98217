// k6 scenario for ws2 (JSON protocol): the same as ws1.js with JSON messages on /ws2.
// Run: k6 run -e VSCP_ADDR=127.0.0.1:8884 --vus 10 --duration 30s loadtest/k6/ws2.js
import { WebSocket } from 'k6/experimental/websockets';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { credential, settings } from './vscp.js';

const ackTime = new Trend('vscp_event_ack_ms', true);
const received = new Counter('vscp_events_received');
const errors = new Counter('vscp_negative_replies');

export const options = {
  thresholds: {
    checks: ['rate>0.99'],
    vscp_negative_replies: ['count==0'],
    vscp_event_ack_ms: ['p(95)<250'],
  },
};

const EVENT = JSON.stringify({ type: 'EVENT', event: { vscpHead: 0, vscpClass: 20, vscpType: 3, vscpGuid: '-', vscpData: [1, 2, 3] } });

export default function () {
  const ws = new WebSocket(`${settings.scheme}://${settings.addr}/ws2`);
  const pending = [];
  let timer = null;
  ws.onmessage = async (msg) => {
    const m = JSON.parse(String(msg.data));
    if (m.type === '+' && m.command === undefined && m.args && m.args[0] === 'AUTH0') {
      const sid = m.args[1];
      const crypto = await credential(settings.key, sid, settings.user, settings.password);
      ws.send(JSON.stringify({ type: 'CMD', command: 'AUTH', args: { iv: sid, crypto: crypto } }));
    } else if (m.command === 'AUTH') {
      check(m, { 'login accepted': (r) => r.type === '+' });
      ws.send(JSON.stringify({ type: 'CMD', command: 'OPEN', args: null }));
    } else if (m.command === 'OPEN') {
      check(m, { 'channel open': (r) => r.type === '+' });
      timer = setInterval(() => {
        pending.push(Date.now());
        ws.send(EVENT);
      }, 1000 / settings.rate);
      setTimeout(() => {
        clearInterval(timer);
        ws.close();
      }, settings.sessionSeconds * 1000);
    } else if (m.command === 'EVENT' && m.type === '+') {
      const sent = pending.shift();
      if (sent !== undefined) ackTime.add(Date.now() - sent);
    } else if (m.type === 'EVENT') {
      received.add(1);
      check(m, { 'event well formed': (r) => r.event && r.event.vscpClass === 20 });
    } else if (m.type === '-') {
      errors.add(1);
    }
  };
  ws.onerror = (e) => {
    check(null, { 'no websocket error': () => false });
    console.error(`websocket error: ${e.error}`);
  };
}
