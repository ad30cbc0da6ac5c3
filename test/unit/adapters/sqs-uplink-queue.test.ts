import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { conversationOf, SqsUplinkQueue, toSqsBody } from '../../../lambdas/adapters/sqs-uplink-queue';
import type { QueuedMessage } from '../../../lambdas/domain/messaging-ports';

const sqs = mockClient(SQSClient);
const QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/uplink.fifo';

const message = (overrides: Partial<QueuedMessage> = {}): QueuedMessage => ({
  msgId: '01JD0000000000000000000001',
  from: 'u1',
  fromDevice: 'd',
  fromConnection: 'c1',
  to: { user: 'u2' },
  body: { text: 'hi' },
  ts: 1,
  ...overrides,
});

async function sent(m: QueuedMessage) {
  sqs.reset();
  sqs.on(SendMessageCommand).resolves({ MessageId: 'x' });
  await new SqsUplinkQueue(new SQSClient({ region: 'us-east-1' }), QUEUE_URL).enqueue(m);
  const calls = sqs.commandCalls(SendMessageCommand);
  expect(calls).toHaveLength(1);
  return calls[0]!.args[0].input;
}

describe('SqsUplinkQueue', () => {
  it('sends the message as JSON with msgId as de-duplication id', async () => {
    const m = message();
    const input = await sent(m);
    expect(input.QueueUrl).toBe(QUEUE_URL);
    expect(JSON.parse(input.MessageBody!)).toEqual(m);
    expect(input.MessageDeduplicationId).toBe(m.msgId);
  });

  it('puts both directions of a conversation in the same message group', async () => {
    const there = await sent(message({ from: 'u1', to: { user: 'u2' } }));
    const back = await sent(message({ from: 'u2', to: { user: 'u1' } }));
    expect(there.MessageGroupId).toBe(back.MessageGroupId);
    const other = await sent(message({ from: 'u1', to: { user: 'u3' } }));
    expect(other.MessageGroupId).not.toBe(there.MessageGroupId);
  });

  it('uses g:{group} for a group, whoever sends', async () => {
    expect((await sent(message({ from: 'u1', to: { group: 'g1' } }))).MessageGroupId).toBe('g:g1');
    expect((await sent(message({ from: 'u7', to: { group: 'g1' } }))).MessageGroupId).toBe('g:g1');
  });

  it('hashes keys that would exceed 128 characters, stably and without collisions between directions', async () => {
    const long1 = 'a'.repeat(128);
    const long2 = 'b'.repeat(128);
    const id = conversationOf(long1, { user: long2 });
    expect(id.length).toBeLessThanOrEqual(128);
    expect(id).toMatch(/^h:[0-9a-f]{64}$/);
    expect(conversationOf(long2, { user: long1 })).toBe(id);
    expect(conversationOf(long1, { user: 'c'.repeat(128) })).not.toBe(id);
    const group = conversationOf('u1', { group: 'g'.repeat(128) });
    expect(group.length).toBeLessThanOrEqual(128);
    expect((await sent(message({ from: long1, to: { user: long2 } }))).MessageGroupId).toBe(id);
  });

  it('propagates a failed send', async () => {
    sqs.reset();
    sqs.on(SendMessageCommand).rejects(new Error('AWS.SimpleQueueService.NonExistentQueue'));
    await expect(new SqsUplinkQueue(new SQSClient({ region: 'us-east-1' }), QUEUE_URL).enqueue(message())).rejects.toThrow('NonExistentQueue');
  });
});

describe('toSqsBody', () => {
  // SQS accepts #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF; the local
  // emulator refuses characters above U+FFFF as well.
  const acceptedEverywhere = /^[\t\n\r\u0020-\uD7FF\uE000-\uFFFD]*$/;
  it.each([
    ['emoji', { t: '😀👍🏽' }],
    ['U+FFFE and U+FFFF', { t: '\uFFFE\uFFFF' }],
    ['lone surrogates', { t: '\uD800 \uDFFF' }],
    ['control characters', { t: '\u0000\u0001\u001f' }],
    ['CJK and RTL', { t: '你好 \u200F שלום' }],
    ['keys too', { '😀': 1, '\uFFFF': [2] }],
  ])('writes %s so that SQS takes it, and JSON.parse restores it exactly', (_name, value) => {
    const body = toSqsBody(value);
    expect(body).toMatch(acceptedEverywhere);
    expect(JSON.parse(body)).toEqual(value);
  });
});
