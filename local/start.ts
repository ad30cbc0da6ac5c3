/**
 * `npm start`: local mode (docs/protocol.md). Prints the URLs, a ready client token and an
 * example signed admin request; Ctrl-C / SIGTERM stops everything (Java included) and exits 0.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseWechatAccounts, WechatAccountsError, type WechatAccounts } from '../lambdas/domain/wechat-accounts';
import { registerAccounts, startFakeWechatApi, type FakeWechatApi } from './fake-wechat-api';
import { AdminKeysError, parseAdminKeyList } from '../lambdas/domain/admin-keys';
import { signature } from '../lambdas/domain/admin-signing';
import { issueClientToken } from '../lambdas/domain/client-token';
import { JavaMissingError } from './java-check';
import { DEFAULT_ADMIN_KEYS, DEFAULT_HTTP_PORT, DEFAULT_JWT_SECRET, DEFAULT_WS_PORT, startLocalGateway, type LocalGateway } from './local-gateway';
import { PortInUseError } from './ports';


const DEFAULT_FAKE_WECHAT_PORT = 3002;

function portFrom(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`${name} must be a port number (0-65535), got "${raw}"`);
    process.exit(1);
  }
  return port;
}

/**
 * WXGATE_LOCAL_POST_RATE (requests per second, > 0) turns on the Management API's rate limit;
 * WXGATE_LOCAL_POST_BURST (an integer >= 1) is its burst, by default half a second's worth as in
 * AWS (10,000/s, burst 5,000). Unset, empty or 0: no limit.
 */
function managementRateLimitFromEnv(): { ratePerSecond: number; burst: number } | undefined {
  const rawRate = process.env.WXGATE_LOCAL_POST_RATE ?? '';
  const rawBurst = process.env.WXGATE_LOCAL_POST_BURST ?? '';
  const fail = (message: string): never => {
    console.error(message);
    process.exit(1);
  };
  const rate = rawRate === '' ? 0 : Number(rawRate);
  if (!Number.isFinite(rate) || rate < 0) fail(`WXGATE_LOCAL_POST_RATE must be a number of requests per second (0 = no limit), got "${rawRate}"`);
  if (rate === 0) {
    if (rawBurst !== '') fail('WXGATE_LOCAL_POST_BURST needs WXGATE_LOCAL_POST_RATE');
    return undefined;
  }
  const burst = rawBurst === '' ? Math.max(1, Math.floor(rate / 2)) : Number(rawBurst);
  if (!Number.isInteger(burst) || burst < 1) fail(`WXGATE_LOCAL_POST_BURST must be an integer of at least 1, got "${rawBurst}"`);
  return { ratePerSecond: rate, burst };
}

async function main(): Promise<void> {
  const httpPort = portFrom('WXGATE_HTTP_PORT', DEFAULT_HTTP_PORT);
  const wsPort = portFrom('WXGATE_WS_PORT', DEFAULT_WS_PORT);
  const managementRateLimit = managementRateLimitFromEnv();
  const jwtSecret = process.env.WXGATE_JWT_SECRET || DEFAULT_JWT_SECRET;
  const adminKeys = process.env.WXGATE_ADMIN_KEYS || DEFAULT_ADMIN_KEYS;
  let firstKey: [string, string];
  try {
    firstKey = [...parseAdminKeyList(adminKeys)][0]!;
  } catch (err) {
    if (!(err instanceof AdminKeysError)) throw err;
    console.error(`\n${err.message}\n`);
    process.exit(1);
  }
  const passThrough: Record<string, string> = {};
  const accountsFile = process.env.WXGATE_WECHAT_ACCOUNTS;
  let accounts: WechatAccounts = new Map();
  if (accountsFile) {
    // Checked at startup, so a bad file is named now rather than at the first callback.
    try {
      accounts = parseWechatAccounts(readFileSync(accountsFile, 'utf8'), `WXGATE_WECHAT_ACCOUNTS (${accountsFile})`);
    } catch (err) {
      console.error(`\n${err instanceof WechatAccountsError ? err.message : `WXGATE_WECHAT_ACCOUNTS: cannot read ${accountsFile}: ${(err as Error).message}`}\n`);
      process.exit(1);
    }
  }
  const wechatAccounts = [...accounts.keys()];
  for (const name of ['WXGATE_WECHAT_ACCOUNTS', 'WXGATE_WECHAT_API_BASE', 'WXGATE_WECOM_API_BASE']) if (process.env[name]) passThrough[name] = process.env[name]!;

  // WXGATE_FAKE_WECHAT_API=1: the fake WeChat API runs alongside, and the handlers call it.
  let fakeWechat: FakeWechatApi | undefined;
  let fakeWechatLines: string[] = [];
  if (process.env.WXGATE_FAKE_WECHAT_API === '1') {
    try {
      fakeWechat = await startFakeWechatApi({ port: portFrom('WXGATE_FAKE_WECHAT_PORT', DEFAULT_FAKE_WECHAT_PORT), recipients: 'open' });
    } catch (err) {
      if (!(err instanceof PortInUseError)) throw err;
      console.error(`\n${err.message}\n`);
      process.exit(1);
    }
    passThrough.WXGATE_WECHAT_API_BASE = passThrough.WXGATE_WECOM_API_BASE = fakeWechat.url;
    fakeWechatLines = registerAccounts(fakeWechat, accounts);
  }

  let gateway: LocalGateway;
  try {
    gateway = await startLocalGateway({ httpPort, wsPort, jwtSecret, adminKeys, handlerEnv: passThrough, managementRateLimit });
  } catch (err) {
    if (err instanceof JavaMissingError || err instanceof PortInUseError) {
      console.error(`\n${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping local mode...`);
    Promise.all([gateway.stop(), fakeWechat?.close()]).then(
      () => process.exit(0),
      (err: Error) => {
        console.error(`stop failed: ${err.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));

  const { token, expiresAt } = await issueClientToken({ userId: 'demo-user', deviceId: 'demo-device', ttlSeconds: 24 * 3600 }, jwtSecret);
  const lines = [
    '',
    'wxgate local mode is ready',
    `  HTTP API        ${gateway.httpUrl}`,
    `  WebSocket API   ${gateway.wsUrl}`,
    `  Management API  ${gateway.managementEndpoint}/@connections/{connectionId}`,
    `  Web console     ${gateway.consoleUrl}  (sign in as any user; admin calls signed with key "${firstKey[0]}"; docs/console.md)`,
    '',
    `Client token (sub demo-user, did demo-device, expires ${new Date(expiresAt * 1000).toISOString()}):`,
    `  ${token}`,
    'Try it:',
    `  npx wscat -c '${gateway.wsUrl}/?token=${token}'`,
    `  > {"action":"ping","id":"p1"}`,
  ];
  const [keyId, secret] = firstKey;
  const timestamp = Math.floor(Date.now() / 1000);
  const nonce = randomBytes(12).toString('base64url');
  const signed = signature(secret, { method: 'GET', path: '/v1/stats', query: '', timestamp, nonce });
  lines.push(
    '',
    'Signed admin request (valid for 300 s, nonce single use; docs/admin-api.md shows how to sign your own):',
    `  curl -s ${gateway.httpUrl}/v1/stats -H 'X-Wxgate-Key: ${keyId}' -H 'X-Wxgate-Timestamp: ${timestamp}' -H 'X-Wxgate-Nonce: ${nonce}' -H 'X-Wxgate-Signature: ${signed}'`,
  );
  lines.push(
    '',
    wechatAccounts.length
      ? `WeChat callbacks: ${wechatAccounts.map((id) => `${gateway.httpUrl}/wechat/${id}`).join(', ')} (try: npm run wechat:sample -- ${wechatAccounts[0]})`
      : 'WeChat callbacks: none configured (WXGATE_WECHAT_ACCOUNTS=<accounts.json>; see docs/wechat.md)',
  );
  if (fakeWechat) {
    lines.push('', `Fake WeChat API (WXGATE_FAKE_WECHAT_API=1) at ${fakeWechat.url}; the handlers call it instead of WeChat (any recipient accepted: WeChat's 48-hour reply window is not checked here):`, ...fakeWechatLines);
    lines.push(`  try: curl -s -X POST ${gateway.httpUrl}/v1/login/wechat -d '{"accountId":"<accountId>","code":"<code above>","kind":"miniprogram"}'`);
  }
  lines.push('', 'Ctrl-C stops everything.');
  console.log(lines.join('\n'));
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
