import { jest } from '@jest/globals';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import type { WsEvent } from '../../../lambdas/runtime/ws-event';

// Powertools reads its settings when the logger is created, at import time: set them first.
process.env.POWERTOOLS_LOG_LEVEL = 'DEBUG';
process.env.POWERTOOLS_METRICS_DISABLED = 'true';
delete process.env.POWERTOOLS_DEV;
// What the persister's wiring reads (nothing is reached: every record below fails its schema).
Object.assign(process.env, {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  CONNECTIONS_TABLE: 'connections',
  MESSAGES_TABLE: 'messages',
  GROUPS_TABLE: 'groups',
  ADMIN_TABLE: 'admin',
  WECHAT_TABLE: 'wechat',
  FANOUT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/fanout',
  WECHAT_OUTBOUND_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/outbound',
  WS_MANAGEMENT_ENDPOINT: 'https://example.execute-api.us-east-1.amazonaws.com/live',
});

const { observed } = await import('../../../lambdas/runtime/middleware');
const { currentCorrelationId, logger } = await import('../../../lambdas/runtime/observability');
const { SqsUplinkQueue } = await import('../../../lambdas/adapters/sqs-uplink-queue');
const { CORRELATION_ID_ATTRIBUTE } = await import('../../../lambdas/adapters/sqs-correlation');
const persister = await import('../../../lambdas/handlers/uplink-persister');
const wechatInbound = await import('../../../lambdas/handlers/wechat-inbound');

const context = {
  callbackWaitsForEmptyEventLoop: true,
  functionName: 'wxgate-test',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:wxgate-test',
  memoryLimitInMB: '512',
  awsRequestId: 'lambda-req-1',
  logGroupName: '/aws/lambda/wxgate-test',
  logStreamName: 'stream',
  getRemainingTimeInMillis: () => 60_000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
} as Context;

/** Every JSON log line the logger writes while `work` runs (warnings and errors go to stderr). */
async function logLines(work: () => Promise<unknown>): Promise<Array<Record<string, unknown>>> {
  const written: string[] = [];
  const capture = (chunk: string | Uint8Array) => {
    written.push(`${String(chunk)}\n`);
    return true;
  };
  const spies = [jest.spyOn(process.stdout, 'write').mockImplementation(capture), jest.spyOn(process.stderr, 'write').mockImplementation(capture)];
  try {
    await work().catch(() => undefined);
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
  return written
    .join('')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function record(messageId: string, group: string, correlationId?: string): SQSRecord {
  return {
    messageId,
    receiptHandle: `rh-${messageId}`,
    body: JSON.stringify({ msgId: 'not-a-ulid' }), // refused by the queue schema: the record fails
    attributes: { ApproximateReceiveCount: '1', MessageGroupId: group, SentTimestamp: '1', SenderId: 's', ApproximateFirstReceiveTimestamp: '1' },
    messageAttributes: correlationId ? { [CORRELATION_ID_ATTRIBUTE]: { stringValue: correlationId, dataType: 'String', stringListValues: [], binaryListValues: [] } } : {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:uplink.fifo',
    awsRegion: 'us-east-1',
  } as SQSRecord;
}

describe('one correlation id from the request to the queue consumer', () => {
  const sqs = mockClient(SQSClient);
  afterAll(() => sqs.restore());

  it("a route's queued message carries the API Gateway request id, and nothing is left after the invocation", async () => {
    sqs.reset();
    sqs.on(SendMessageCommand).resolves({ MessageId: 'm' });
    const queue = new SqsUplinkQueue(new SQSClient({ region: 'us-east-1' }), 'https://sqs.us-east-1.amazonaws.com/123456789012/uplink.fifo', currentCorrelationId);
    const handler = observed<WsEvent, { statusCode: number }>(async () => {
      await queue.enqueue({ msgId: '01JD0000000000000000000001', from: 'u1', fromDevice: 'd', fromConnection: 'c1', to: { user: 'u2' }, body: 1, ts: 1 });
      logger.info('queued');
      return { statusCode: 200 };
    });
    const event = { requestContext: { routeKey: 'send', eventType: 'MESSAGE', connectionId: 'c1', connectedAt: 1, requestId: 'api-req-7' }, body: '{}' } as WsEvent;
    const lines = await logLines(() => handler(event, context));

    expect(sqs.commandCalls(SendMessageCommand)[0]!.args[0].input.MessageAttributes).toEqual({ [CORRELATION_ID_ATTRIBUTE]: { DataType: 'String', StringValue: 'api-req-7' } });
    expect(lines.find((line) => line.message === 'queued')).toMatchObject({ correlation_id: 'api-req-7' });
    expect(currentCorrelationId()).toBeUndefined();
  });

  it.each([
    ['uplink persister', persister.handler, 'storing a queued message failed; SQS will redeliver it'],
    ['WeChat inbound persister', wechatInbound.handler, 'storing a WeChat message failed; SQS will redeliver it'],
  ])('the %s logs each record under the id that record carries, and only that record', async (_name, handler, failure) => {
    const event: SQSEvent = { Records: [record('m1', 'g1', 'api-req-1'), record('m2', 'g2'), record('m3', 'g3', 'api-req-3')] };
    const lines = await logLines(() => handler(event, context));

    const failures = lines.filter((line) => line.message === failure);
    expect(failures.map((line) => [line.messageId, line.correlation_id])).toEqual([
      ['m1', 'api-req-1'],
      ['m2', undefined],
      ['m3', 'api-req-3'],
    ]);
    // Nothing logged after the batch (the partial-failure summary) carries a record's id.
    expect(currentCorrelationId()).toBeUndefined();
  });
});
