import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { parseAdminKeyJson, parseAdminKeyList, type AdminKeys } from '../domain/admin-keys';
import { env } from '../../lib/gateway-declaration';
import { ConfigError } from './config';

/**
 * The admin keys: `WXGATE_ADMIN_KEYS` in local mode, else the Secrets Manager secret named by
 * ADMIN_KEYS_SECRET_ARN, cached for 5 minutes so an added or removed key takes effect without
 * a redeploy. Parsed once per distinct value.
 */
let parsed: { raw: string; keys: AdminKeys } | undefined;

export async function loadAdminKeys(): Promise<AdminKeys> {
  const local = process.env[env.adminKeysValue];
  const arn = process.env[env.adminKeysArn];
  let raw: string;
  if (local) raw = local;
  else if (arn) {
    const value = await getSecret<string>(arn, { maxAge: 300 });
    if (typeof value !== 'string') throw new ConfigError('the admin keys secret has no string value');
    raw = value;
  } else throw new ConfigError(`neither ${env.adminKeysValue} nor ${env.adminKeysArn} is set`);
  if (parsed?.raw !== raw) parsed = { raw, keys: local ? parseAdminKeyList(raw) : parseAdminKeyJson(raw) };
  return parsed.keys;
}
