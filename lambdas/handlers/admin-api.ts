import { verifyAdminRequest } from '../domain/admin-auth';
import { adminPush } from '../domain/admin-push';
import { checkGroupSize, pageLimit, parseJson, parseRequestBody, pathId } from '../domain/admin-requests';
import { maxGroupMembers } from '../runtime/config';
import { adminOutboundOf, callFor, outboundIdOf, outboundView, submitOutbound } from '../domain/wechat-outbound';
import { outboundStore, outboundSubmitDeps } from '../runtime/wechat-dependencies';
import { loadWechatAccounts } from '../runtime/wechat-accounts-source';
import { issueClientToken } from '../domain/client-token';
import { GatewayError, tooLarge } from '../domain/errors';
import { readPresence } from '../domain/presence';
import { loadAdminKeys } from '../runtime/admin-keys-source';
import { adminPushDeps, adminStore, connectionRegistry, connectionSender, groupDirectory, newMessageId, presenceStore } from '../runtime/dependencies';
import { httpRoute, json, type HttpEvent, type HttpResult } from '../runtime/http-route';
import { loadJwtSecret } from '../runtime/jwt-secret';
import { countMetric, logger, withMetrics } from '../runtime/observability';

/**
 * The admin API (docs/admin-api.md): one function behind every `/v1/*` route. Each request is
 * size-checked, then its signature and nonce are verified (admin-auth.ts), then the route runs.
 */
export const MAX_ADMIN_BODY_BYTES = 256 * 1024;

type Route = (event: HttpEvent, body: string, keyId: string) => Promise<HttpResult>;

const routes: Record<string, Route> = {
  'POST /v1/tokens': async (_event, body) => {
    const request = parseRequestBody('token', body);
    const issued = await issueClientToken({ userId: request.userId, deviceId: request.deviceId, ttlSeconds: request.ttlSeconds ?? 3600 }, await loadJwtSecret());
    return json(200, issued);
  },

  'POST /v1/push': async (_event, body, keyId) => {
    const request = parseRequestBody('push', body);
    const { status, ...result } = await adminPush(adminPushDeps(), keyId, request.to, request.body);
    countMetric(status === 202 ? 'adminPushJobs' : 'adminPushes');
    logger.debug('admin push accepted', { status, ...result });
    return json(status, result);
  },

  'GET /v1/jobs/{jobId}': async (event) => {
    const jobId = pathId(event.pathParameters?.jobId, 'jobId');
    const job = await adminStore().getJob(jobId);
    if (!job) throw new GatewayError('not_found', `no job ${jobId}`);
    const { state, targeted, delivered, gone, failed, msgId } = job;
    return json(200, { jobId, msgId, state, targeted, delivered, gone, failed });
  },

  'GET /v1/users/{userId}/connections': async (event) => {
    const userId = pathId(event.pathParameters?.userId, 'userId');
    const connections = await connectionRegistry().listByUser(userId, Date.now());
    return json(200, { connections: connections.map(({ connectionId, deviceId, connectedAt }) => ({ connectionId, deviceId, connectedAt })) });
  },

  'DELETE /v1/users/{userId}/connections': async (event) => {
    const userId = pathId(event.pathParameters?.userId, 'userId');
    const registry = connectionRegistry();
    let closed = 0;
    for (const connection of await registry.listByUser(userId, Date.now())) {
      // DeleteConnection: API Gateway closes the socket and runs $disconnect, which removes the row.
      const outcome = await connectionSender().disconnect(connection.connectionId);
      if (outcome === 'ok') closed++;
      else if (outcome === 'gone') await registry.removeStale(connection.connectionId, userId);
    }
    return json(200, { closed });
  },

  'PUT /v1/groups/{groupId}/members': async (event, body) => {
    const groupId = pathId(event.pathParameters?.groupId, 'groupId');
    const request = parseRequestBody('members', body);
    const groups = groupDirectory();
    if (request.add?.length) checkGroupSize(await groups.countMembers(groupId), request, maxGroupMembers());
    if (request.add?.length) await groups.addMembers(groupId, request.add);
    if (request.remove?.length) await groups.removeMembers(groupId, request.remove);
    return json(200, { groupId, members: await groups.countMembers(groupId) });
  },

  'GET /v1/groups/{groupId}/members': async (event) => {
    const groupId = pathId(event.pathParameters?.groupId, 'groupId');
    const query = event.queryStringParameters ?? {};
    const after = query.after === undefined ? undefined : pathId(query.after, 'after');
    const page = await groupDirectory().membersPage(groupId, after, pageLimit(query.limit));
    return json(200, { members: page.members, next: page.next ?? null });
  },

  'GET /v1/stats': async () => json(200, await readPresence(presenceStore())),

  'POST /v1/wechat/{accountId}/messages': async (event, body) => {
    const account = await configuredAccount(event.pathParameters?.accountId);
    const request = adminOutboundOf(parseJson(body));
    const id = request.clientMsgId ? outboundIdOf(account.accountId, request.clientMsgId) : newMessageId(Date.now());
    callFor(account, { ...request, id }); // a message this account cannot send is a 400 now, not a failed state later
    const record = await submitOutbound(outboundSubmitDeps(), { id, accountId: account.accountId, ...request });
    countMetric('wechatOutboundSubmitted');
    return json(202, { messageId: record.id, state: record.state });
  },

  'GET /v1/wechat/{accountId}/messages/{messageId}': async (event) => {
    const accountId = pathId(event.pathParameters?.accountId, 'accountId');
    const messageId = pathId(event.pathParameters?.messageId, 'messageId');
    const record = await outboundStore().get(messageId);
    if (!record || record.accountId !== accountId) throw new GatewayError('not_found', `no message ${messageId} for account ${accountId}`);
    return json(200, outboundView(record));
  },
};

async function configuredAccount(raw: string | undefined) {
  const accountId = pathId(raw, 'accountId');
  const account = (await loadWechatAccounts()).get(accountId);
  if (!account) throw new GatewayError('not_found', `no WeChat account ${accountId} is configured`);
  return account;
}

export const handler = httpRoute(async (event) => {
  countMetric('adminRequests'); // every invocation has a metric to flush, refused ones too
  const raw = event.body === undefined ? Buffer.alloc(0) : Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');
  if (raw.length > MAX_ADMIN_BODY_BYTES) throw tooLarge(`request body is ${raw.length} bytes; the limit is ${MAX_ADMIN_BODY_BYTES}`);
  const { keyId } = await verifyAdminRequest(
    { method: event.requestContext.http.method, path: event.rawPath, query: event.rawQueryString ?? '', headers: event.headers ?? {}, body: raw },
    await loadAdminKeys(),
    adminStore(),
    Date.now(),
  );
  const route = routes[event.routeKey];
  if (!route) throw new GatewayError('not_found', `no route ${event.routeKey}`);
  return route(event, raw.toString('utf8'), keyId);
}).use(withMetrics());
