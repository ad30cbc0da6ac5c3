import { readFileSync } from 'node:fs';
import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { env } from '../../lib/gateway-declaration';
import { parseWechatAccounts, type WechatAccounts } from '../domain/wechat-accounts';

/**
 * The WeChat accounts: the JSON file named by WXGATE_WECHAT_ACCOUNTS in local mode (read once
 * per instance), else the Secrets Manager secret named by WECHAT_ACCOUNTS_SECRET_ARN (cached for
 * 5 minutes). No configuration at all means no accounts: every callback answers 404.
 */
let parsed: { raw: string; accounts: WechatAccounts } | undefined;

export async function loadWechatAccounts(): Promise<WechatAccounts> {
  const file = process.env[env.wechatAccountsFile];
  const arn = process.env[env.wechatAccountsArn];
  let raw: string;
  let source: string;
  if (file) {
    raw = parsed?.raw ?? readFileSync(file, 'utf8');
    source = `${env.wechatAccountsFile} (${file})`;
  } else if (arn) {
    raw = (await getSecret<string>(arn, { maxAge: 300 })) ?? '{}';
    source = 'the WeChat accounts secret';
  } else return new Map();
  if (parsed?.raw !== raw) parsed = { raw, accounts: parseWechatAccounts(raw, source) };
  return parsed.accounts;
}
