// Shared helpers for the k6 scenarios: the VSCP AUTH credential (AES-128-CBC of "user:password"
// with the session id as IV) computed with k6's WebCrypto. WebCrypto always adds PKCS#7
// padding, which the server accepts (docs/protocol.md, "Logging in").

export function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

function bytesToHex(buf) {
  const b = new Uint8Array(buf);
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
  return s.toUpperCase();
}

function ascii(s) {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
  return b;
}

export async function credential(keyHex, sidHex, user, password) {
  const key = await crypto.subtle.importKey('raw', hexToBytes(keyHex), { name: 'AES-CBC' }, false, ['encrypt']);
  const ct = await crypto.subtle.encrypt({ name: 'AES-CBC', iv: hexToBytes(sidHex) }, key, ascii(`${user}:${password}`));
  return bytesToHex(ct);
}

export const settings = {
  addr: __ENV.VSCP_ADDR || '127.0.0.1:8884',
  // `wss` for a TLS listener (interface "wss://..."); the server's CA must be trusted
  // (SSL_CERT_FILE) or verification skipped (--insecure-skip-tls-verify).
  scheme: __ENV.VSCP_SCHEME || 'ws',
  key: __ENV.VSCP_KEY || '2DBB079A38985AF00EBEEFE22F9FFA0E',
  user: __ENV.VSCP_USER || 'admin',
  password: __ENV.VSCP_PASSWORD || 'secret',
  // Events each VU sends per second, and for how long a session stays open.
  rate: Number(__ENV.VSCP_RATE || 10),
  sessionSeconds: Number(__ENV.VSCP_SESSION_SECONDS || 5),
};
