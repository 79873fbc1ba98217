// k6 scenario for ws1 (text protocol): each VU connects to /ws1, logs in, OPENs, sends events
// at VSCP_RATE per second for VSCP_SESSION_SECONDS and receives the other VUs' events.
// Run: k6 run -e VSCP_ADDR=127.0.0.1:8884 --vus 10 --duration 30s loadtest/k6/ws1.js
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

export default function () {
  const ws = new WebSocket(`${settings.scheme}://${settings.addr}/ws1`);
  const pending = [];
  let timer = null;
  ws.onmessage = async (msg) => {
    const line = String(msg.data);
    if (line.startsWith('+;AUTH0;')) {
      const sid = line.substring(8);
      const crypto = await credential(settings.key, sid, settings.user, settings.password);
      ws.send(`C;AUTH;${sid};${crypto}`);
    } else if (line.startsWith('+;AUTH1;') || line.startsWith('-;AUTH;')) {
      check(line, { 'login accepted': (l) => l.startsWith('+;AUTH1;') });
      ws.send('C;OPEN');
    } else if (line === '+;OPEN') {
      check(line, { 'channel open': () => true });
      timer = setInterval(() => {
        pending.push(Date.now());
        ws.send('E;0,20,3,0,,0,-,1,2,3');
      }, 1000 / settings.rate);
      setTimeout(() => {
        clearInterval(timer);
        ws.close();
      }, settings.sessionSeconds * 1000);
    } else if (line === '+;EVENT') {
      const sent = pending.shift();
      if (sent !== undefined) ackTime.add(Date.now() - sent);
    } else if (line.startsWith('E;')) {
      received.add(1);
      check(line, { 'event well formed': (l) => l.split(',').length >= 7 });
    } else if (line.startsWith('-')) {
      errors.add(1);
    }
  };
  ws.onerror = (e) => {
    check(null, { 'no websocket error': () => false });
    console.error(`websocket error: ${e.error}`);
  };
}
