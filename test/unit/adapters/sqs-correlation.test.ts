import { SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { CORRELATION_ID_ATTRIBUTE, correlationAttributes, correlationIdOf } from '../../../lambdas/adapters/sqs-correlation';
import { SqsFanoutQueue } from '../../../lambdas/adapters/sqs-fanout-queue';
import { SqsUplinkQueue } from '../../../lambdas/adapters/sqs-uplink-queue';
import { SqsWechatInbound } from '../../../lambdas/adapters/sqs-wechat-inbound';
import { SqsWechatOutboundQueue } from '../../../lambdas/adapters/sqs-wechat-outbound-queue';
import type { FanoutTask } from '../../../lambdas/domain/fanout';
import type { QueuedMessage } from '../../../lambdas/domain/messaging-ports';

const sqs = mockClient(SQSClient);
const client = () => new SQSClient({ region: 'us-east-1' });
const URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/q';

const message: QueuedMessage = { msgId: '01JD0000000000000000000001', from: 'u1', fromDevice: 'd', fromConnection: 'c1', to: { user: 'u2' }, body: { text: 'hi' }, ts: 1 };
const attribute = (id: string) => ({ [CORRELATION_ID_ATTRIBUTE]: { DataType: 'String', StringValue: id } });

beforeEach(() => {
  sqs.reset();
  sqs.on(SendMessageCommand).resolves({ MessageId: 'm' });
  sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
});

const sentAttributes = () => sqs.commandCalls(SendMessageCommand).map((call) => call.args[0].input.MessageAttributes);

describe('the correlation id travels as a message attribute', () => {
  it('the uplink queue sends the id its source gives at send time (the request being handled)', async () => {
    let current: string | undefined = 'api-req-1';
    const queue = new SqsUplinkQueue(client(), URL, () => current);
    await queue.enqueue(message);
    current = 'api-req-2';
    await queue.enqueue({ ...message, msgId: '01JD0000000000000000000002' });
    current = undefined;
    await queue.enqueue({ ...message, msgId: '01JD0000000000000000000003' });
    expect(sentAttributes()).toEqual([attribute('api-req-1'), attribute('api-req-2'), undefined]);
  });

  it('the WeChat inbound, outbound and fan-out queues carry it too', async () => {
    await new SqsWechatInbound(client(), URL, () => 'cb-req').enqueue(message, 'acc', 'open-1', 'dedup');
    await new SqsWechatOutboundQueue(client(), URL, () => 'push-req').enqueue({ id: 'o1', attempt: 1 }, 0);
    expect(sentAttributes()).toEqual([attribute('cb-req'), attribute('push-req')]);

    const tasks = Array.from({ length: 12 }, (_, i) => ({ jobId: 'j', taskId: `t${i}` }) as unknown as FanoutTask);
    await new SqsFanoutQueue(client(), URL, () => 'send-req').enqueue(tasks);
    const entries = sqs.commandCalls(SendMessageBatchCommand).flatMap((call) => call.args[0].input.Entries ?? []);
    expect(entries).toHaveLength(12);
    for (const entry of entries) expect(entry.MessageAttributes).toEqual(attribute('send-req'));
  });

  it('adapters built without a source send no attribute', async () => {
    await new SqsUplinkQueue(client(), URL).enqueue(message);
    expect(sentAttributes()).toEqual([undefined]);
  });

  it('a consumer reads the id from its record; an absent, empty or oversized one is none', () => {
    const record = (attributes: Record<string, { stringValue?: string; dataType: string }>) => ({ messageAttributes: attributes }) as never;
    expect(correlationIdOf(record({ [CORRELATION_ID_ATTRIBUTE]: { stringValue: 'api-req-1', dataType: 'String' } }))).toBe('api-req-1');
    expect(correlationIdOf(record({}))).toBeUndefined();
    expect(correlationIdOf(record({ [CORRELATION_ID_ATTRIBUTE]: { stringValue: '', dataType: 'String' } }))).toBeUndefined();
    expect(correlationIdOf(record({ [CORRELATION_ID_ATTRIBUTE]: { stringValue: 'x'.repeat(129), dataType: 'String' } }))).toBeUndefined();
    expect(correlationAttributes('x'.repeat(129))).toBeUndefined();
    expect(correlationAttributes(undefined)).toBeUndefined();
  });
});
