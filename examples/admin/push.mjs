#!/usr/bin/env node
// Mints a client token for a user, then pushes a message to that user (docs/admin-api.md).
// Standalone: Node >= 18 (global fetch) and node:crypto, nothing to install. Inside a project
// that depends on wxgate, `import { signRequest } from 'wxgate/sign'` does the signing instead.
//
//   node push.mjs              WXGATE_URL (default http://127.0.0.1:3000), WXGATE_KEY_ID,
//                              WXGATE_KEY_SECRET (default local mode's key), WXGATE_USER (default demo-user)
//   node push.mjs --selftest   prints the signature of the documented worked example
//
// Prints each answer as `METHOD PATH -> STATUS BODY`; exits 1 on a non-2xx answer.
import { createHash, createHmac, randomBytes } from 'node:crypto';

/** hex(HMAC_SHA256(secret, METHOD\nPATH\nQUERY\nTIMESTAMP\nNONCE\nhex(SHA256(body)))) */
function sign(secret, method, path, query, timestamp, nonce, body) {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  const stringToSign = [method, path, query, String(timestamp), nonce, bodyHash].join('\n');
  return createHmac('sha256', secret).update(stringToSign).digest('hex');
}

if (process.argv[2] === '--selftest') {
  console.log(sign('local-dev-admin-secret', 'POST', '/v1/push', 'a=1', 1700000000, 'abcdefabcdefabcdef', '{"x":1}'));
  process.exit(0);
}

const baseUrl = (process.env.WXGATE_URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
const keyId = process.env.WXGATE_KEY_ID || 'local';
const secret = process.env.WXGATE_KEY_SECRET || 'local-dev-admin-secret';
const user = process.env.WXGATE_USER || 'demo-user';

async function call(method, pathWithQuery, payload) {
  const url = new URL(baseUrl + pathWithQuery);
  const body = payload === undefined ? '' : JSON.stringify(payload); // sign exactly the bytes sent
  const timestamp = Math.floor(Date.now() / 1000);
  const nonce = randomBytes(16).toString('hex');
  const headers = {
    'X-Wxgate-Key': keyId,
    'X-Wxgate-Timestamp': String(timestamp),
    'X-Wxgate-Nonce': nonce,
    // The path and query as fetch sends them: taken from the parsed URL.
    'X-Wxgate-Signature': sign(secret, method, url.pathname, url.search.slice(1), timestamp, nonce, body),
  };
  if (body) headers['content-type'] = 'application/json';
  const response = await fetch(url, { method, headers, body: body || undefined });
  const text = await response.text();
  console.log(`${method} ${pathWithQuery} -> ${response.status} ${text}`);
  if (!response.ok) process.exit(1);
  return JSON.parse(text);
}

const { token } = await call('POST', '/v1/tokens', { userId: user });
// A client connects with it: wss://<WebSocket API>/?token=${token}
await call('POST', '/v1/push', { to: { users: [user] }, body: { text: 'hello from node' } });
