import { GatewayError } from '../domain/errors';
import type { QueuedMessage } from '../domain/messaging-ports';
import { agentGroupOf, openCallback, verifyUrl, wechatSenderOf } from '../domain/wechat-callback';
import { newMessageId, wechatInbound } from '../runtime/dependencies';
import { httpRoute, type HttpResult } from '../runtime/http-route';
import { countMetric, logger, withMetrics } from '../runtime/observability';
import { loadWechatAccounts } from '../runtime/wechat-accounts-source';

/**
 * `/wechat/{accountId}` (docs/wechat.md). WeChat waits 5 s and then retries; this answers
 * `success` as soon as the message is on the inbound queue (nothing else happens before the
 * answer), and an error when it is not, so that WeChat retries.
 */
const text = (statusCode: number, body: string): HttpResult => ({ statusCode, headers: { 'content-type': 'text/plain; charset=utf-8' }, body });

export const handler = httpRoute(async (event) => {
  countMetric('wechatCallbacks');
  const accountId = event.pathParameters?.accountId ?? '';
  const account = (await loadWechatAccounts()).get(accountId);
  if (!account) throw new GatewayError('not_found', `no WeChat account "${accountId.slice(0, 64)}" is configured`);
  const query = event.queryStringParameters ?? {};
  if (event.requestContext.http.method === 'GET') return text(200, verifyUrl(account, query));

  const body = event.body === undefined ? '' : event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  const { fields, dedupKey } = openCallback(account, query, body);
  const openId = String(fields.FromUserName ?? '');
  const ts = Date.now();
  const message: QueuedMessage = {
    msgId: newMessageId(ts),
    from: wechatSenderOf(accountId, openId),
    fromDevice: 'wechat',
    fromConnection: '',
    to: { group: agentGroupOf(accountId) },
    body: { wechat: fields },
    ts,
    origin: 'wechat',
  };
  await wechatInbound().enqueue(message, accountId, openId, dedupKey);
  logger.debug('WeChat callback queued', { accountId, msgId: message.msgId });
  return text(200, 'success');
}).use(withMetrics());
