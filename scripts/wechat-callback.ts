/**
 * Signs and posts one WeChat callback to a wxgate HTTP API, the way WeChat would
 * (docs/wechat.md). For developers in local mode and for operators checking a deployment.
 *
 *   WXGATE_WECHAT_ACCOUNTS=examples/wechat/accounts.json npm run wechat:sample -- <accountId> [options]
 *
 * Options: --text "hi" (default "hello from WeChat"), --from <openId> (default oLocalUser),
 * --mode safe|compat|plain (default safe; WeCom is always safe), --msg-id <n> (default: random),
 * --url <base> (default WXGATE_URL or http://127.0.0.1:3000), --verify (send the GET URL
 * verification instead). Prints the HTTP status and the answer; exits 1 unless it is 200.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseWechatAccounts } from '../lambdas/domain/wechat-accounts';
import { buildCallback, buildVerification } from './wechat-callback-builder';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    text: { type: 'string' },
    from: { type: 'string' },
    mode: { type: 'string', default: 'safe' },
    'msg-id': { type: 'string' },
    url: { type: 'string', default: process.env.WXGATE_URL ?? 'http://127.0.0.1:3000' },
    verify: { type: 'boolean', default: false },
  },
});

const accountId = positionals[0];
const file = process.env.WXGATE_WECHAT_ACCOUNTS;
if (!accountId || !file) {
  console.error('usage: WXGATE_WECHAT_ACCOUNTS=<accounts.json> npm run wechat:sample -- <accountId> [--text ..] [--from ..] [--mode safe|compat|plain] [--verify]');
  process.exit(2);
}
const account = parseWechatAccounts(readFileSync(file, 'utf8'), file).get(accountId);
if (!account) {
  console.error(`no account "${accountId}" in ${file}`);
  process.exit(2);
}
if (!['safe', 'compat', 'plain'].includes(values.mode!)) {
  console.error('--mode must be safe, compat or plain');
  process.exit(2);
}

const request = values.verify
  ? buildVerification(account)
  : buildCallback(account, { mode: values.mode as 'safe', text: values.text, from: values.from, msgId: values['msg-id'] });
const response = await fetch(values.url + request.pathAndQuery, {
  method: request.method,
  headers: request.body ? { 'content-type': 'text/xml' } : undefined,
  body: request.body,
});
console.log(`${response.status} ${await response.text()}`);
process.exit(response.status === 200 ? 0 : 1);
