/**
 * Runs the fake WeChat API (local/fake-wechat-api.ts) by hand, with the accounts of local mode:
 *
 *   WXGATE_WECHAT_ACCOUNTS=<accounts.json> npm run wechat:fake-api
 *
 * Listens on 127.0.0.1:WXGATE_FAKE_WECHAT_PORT (default 3002). Accounts with an appSecret are
 * registered (WeCom ones also need their agentId); for each official account it prints a
 * mini-program login code. Ctrl-C stops it.
 */
import { readFileSync } from 'node:fs';
import { parseWechatAccounts, WechatAccountsError, type WechatAccounts } from '../lambdas/domain/wechat-accounts';
import { registerAccounts, startFakeWechatApi } from './fake-wechat-api';
import { PortInUseError } from './ports';

function fail(message: string): never {
  console.error(`\n${message}\n`);
  process.exit(1);
}

const port = Number(process.env.WXGATE_FAKE_WECHAT_PORT || 3002);
if (!Number.isInteger(port) || port < 0 || port > 65_535) fail('WXGATE_FAKE_WECHAT_PORT must be a port number (0-65535)');

function readAccounts(): WechatAccounts {
  const file = process.env.WXGATE_WECHAT_ACCOUNTS;
  if (!file) return new Map();
  try {
    return parseWechatAccounts(readFileSync(file, 'utf8'), `WXGATE_WECHAT_ACCOUNTS (${file})`);
  } catch (err) {
    return fail(err instanceof WechatAccountsError ? err.message : `WXGATE_WECHAT_ACCOUNTS: cannot read ${file}: ${(err as Error).message}`);
  }
}
const accounts = readAccounts();

const api = await startFakeWechatApi({ port, recipients: 'open' }).catch((err: unknown) => fail(err instanceof PortInUseError ? err.message : String(err)));

console.log(`Fake WeChat API on ${api.url}`);
console.log(`  point wxgate at it: WXGATE_WECHAT_API_BASE=${api.url} WXGATE_WECOM_API_BASE=${api.url}`);
if (accounts.size === 0) console.log('  no accounts (WXGATE_WECHAT_ACCOUNTS=<accounts.json>; see docs/wechat.md)');
for (const line of registerAccounts(api, accounts)) console.log(line);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void api.close().then(() => process.exit(0));
  });
}
