import type { Context } from 'aws-lambda';
import type { WsEvent, WsResult } from '../../../lambdas/runtime/ws-event';

// Powertools reads its settings when the logger and tracer are created, at import time:
// set the environment first, then import the middleware dynamically.
process.env.POWERTOOLS_DEV = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
process.env.POWERTOOLS_TRACE_ENABLED = 'false';
process.env.POWERTOOLS_METRICS_DISABLED = 'true';

const { wsRoute } = await import('../../../lambdas/runtime/ws-route');
const { GatewayError } = await import('../../../lambdas/domain/errors');
const { logger } = await import('../../../lambdas/runtime/observability');

const context = {
  callbackWaitsForEmptyEventLoop: true,
  functionName: 'wxgate-test',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:wxgate-test',
  memoryLimitInMB: '256',
  awsRequestId: 'req-1',
  logGroupName: '/aws/lambda/wxgate-test',
  logStreamName: 'stream',
  getRemainingTimeInMillis: () => 5000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
} as Context;

const event = (body: string | null): WsEvent => ({
  requestContext: {
    routeKey: 'send',
    eventType: 'MESSAGE',
    connectionId: 'conn-1',
    connectedAt: Date.now(),
    requestId: 'api-req-1',
    authorizer: { userId: 'u1', deviceId: 'd1' },
  },
  body,
});

async function invoke(handler: (e: WsEvent) => Promise<object | undefined>, body: string | null): Promise<WsResult> {
  return (await wsRoute(handler)(event(body), context)) as WsResult;
}

describe('wsRoute', () => {
  it('refuses a binary frame (isBase64Encoded) before the handler runs, without decoding it', async () => {
    let ran = false;
    const handler = wsRoute(async () => {
      ran = true;
      return { type: 'pong' };
    });
    const binary = { ...event(Buffer.from('{"action":"send","id":"b-1"}').toString('base64')), isBase64Encoded: true };
    const result = (await handler(binary, context)) as WsResult;
    expect(ran).toBe(false);
    expect(JSON.parse(result.body!)).toEqual({ type: 'error', code: 'bad_request', message: 'binary frames are not supported; send JSON text frames' });
  });

  it('turns an unexpected error into an internal error frame that leaks nothing', async () => {
    const result = await invoke(async () => {
      throw new Error('secret stack detail');
    }, JSON.stringify({ action: 'send', id: 'f-1' }));

    expect(result.statusCode).toBe(200);
    expect(result.body).not.toContain('secret stack detail');
    expect(result.body).not.toContain('at ');
    const frame = JSON.parse(result.body!);
    expect(frame).toEqual({ type: 'error', id: 'f-1', code: 'internal', message: expect.any(String) });
  });

  it('keeps the code and message of a GatewayError and echoes the frame id', async () => {
    const result = await invoke(async () => {
      throw new GatewayError('forbidden', 'only members of group "g1" may send to it');
    }, JSON.stringify({ action: 'send', id: 'f-2' }));

    expect(result.statusCode).toBe(200);
    expect(JSON.parse(result.body!)).toEqual({ type: 'error', id: 'f-2', code: 'forbidden', message: 'only members of group "g1" may send to it' });
  });

  it('omits the id when the frame had none or was not JSON', async () => {
    const fail = async () => {
      throw new GatewayError('bad_request', 'nope');
    };
    expect(JSON.parse((await invoke(fail, '{oops')).body!)).toEqual({ type: 'error', code: 'bad_request', message: 'nope' });
    expect(JSON.parse((await invoke(fail, null)).body!)).toEqual({ type: 'error', code: 'bad_request', message: 'nope' });
  });

  it('answers the returned frame, or no body at all', async () => {
    await expect(invoke(async () => ({ type: 'pong', id: 'p1', ts: 1 }), '{}')).resolves.toEqual({ statusCode: 200, body: '{"type":"pong","id":"p1","ts":1}' });
    await expect(invoke(async () => undefined, '{}')).resolves.toEqual({ statusCode: 200 });
  });

  it('logs with the API Gateway request id as correlation id', async () => {
    let seen: unknown;
    await invoke(async () => {
      seen = logger.getCorrelationId();
      return undefined;
    }, '{}');
    expect(seen).toBe('api-req-1');
  });
});
