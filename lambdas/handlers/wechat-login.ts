import { parseJson } from '../domain/admin-requests';
import { issueClientToken } from '../domain/client-token';
import { tooLarge } from '../domain/errors';
import { loginWithWechat, parseLoginRequest } from '../domain/wechat-login';
import { wechatApis } from '../runtime/dependencies';
import { httpRoute, json } from '../runtime/http-route';
import { loadJwtSecret } from '../runtime/jwt-secret';
import { countMetric, withMetrics } from '../runtime/observability';
import { loadWechatAccounts } from '../runtime/wechat-accounts-source';

/** `POST /v1/login/wechat` (docs/wechat.md): not admin-signed; apps call it with a WeChat code. */
const MAX_LOGIN_BODY_BYTES = 4096;

export const handler = httpRoute(async (event) => {
  countMetric('wechatLogins');
  const raw = event.body === undefined ? '' : event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  if (Buffer.byteLength(raw, 'utf8') > MAX_LOGIN_BODY_BYTES) throw tooLarge(`a login request is at most ${MAX_LOGIN_BODY_BYTES} bytes`);
  const request = parseLoginRequest(parseJson(raw));
  const result = await loginWithWechat(
    { accounts: loadWechatAccounts, api: wechatApis(), issueToken: async (token) => issueClientToken(token, await loadJwtSecret()) },
    request,
  );
  return json(200, result);
}).use(withMetrics());
