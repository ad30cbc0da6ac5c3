import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { TestClient, type Frame } from '../support/ws-test-client';

/**
 * Fault injection: the first storing attempt of ~40 % of messages fails half-way (after its
 * inbox rows were written). SQS redelivers them; after the queue drains, every acked message
 * must be stored exactly once in each inbox, and nothing may sit in the dead-letter queue.
 */
let t: TestGateway;

beforeAll(async () => {
  t = await startTestGateway({
    handlerEnv: { WXGATE_TEST_PERSIST_FAULT_RATIO: '0.4' },
    // Failed records come back after the visibility timeout: keep it short here.
    queueVisibilityTimeoutSeconds: 1,
  });
}, 90_000);

afterAll(async () => {
  await t?.stop();
});

test('every acked message is stored exactly once despite failed attempts', async () => {
  const alice = await TestClient.as(t.gateway.wsUrl, 'fi-alice', 'd1');
  const bob = await TestClient.as(t.gateway.wsUrl, 'fi-bob', 'd1');
  await t.groups.addMembers('fi-group', ['fi-alice', 'fi-bob', 'fi-carl']);
  const acks: Frame[] = [];
  for (let i = 0; i < 20; i++) {
    acks.push(await alice.request({ action: 'send', to: { user: 'fi-bob' }, body: { i } }));
    acks.push(await bob.request({ action: 'send', to: { group: 'fi-group' }, body: { i } }));
  }
  expect(acks.every((a) => a.type === 'ack')).toBe(true);
  await t.gateway.drainQueues(60_000);

  const count = (rows: Array<Record<string, any>>) => {
    const byMsg = new Map<string, number>();
    for (const row of rows) byMsg.set(row.msgId, (byMsg.get(row.msgId) ?? 0) + 1);
    return byMsg;
  };
  const direct = acks.filter((_, i) => i % 2 === 0).map((a) => a.msgId as string);
  const group = acks.filter((_, i) => i % 2 === 1).map((a) => a.msgId as string);
  const inbox = {
    alice: count(await t.inboxRows('fi-alice')),
    bob: count(await t.inboxRows('fi-bob')),
    carl: count(await t.inboxRows('fi-carl')),
  };
  for (const msgId of direct) {
    expect([msgId, inbox.alice.get(msgId), inbox.bob.get(msgId)]).toEqual([msgId, 1, 1]);
    expect(inbox.carl.get(msgId)).toBeUndefined();
  }
  for (const msgId of group) {
    expect([msgId, inbox.alice.get(msgId), inbox.bob.get(msgId), inbox.carl.get(msgId)]).toEqual([msgId, 1, 1, 1]);
  }
  expect(inbox.alice.size).toBe(40);
  expect(inbox.carl.size).toBe(20);

  // The switch really failed attempts (else this test would prove nothing): a message row
  // records every position a storing attempt began at, so retried messages have two.
  const retried: string[] = [];
  for (const msgId of [...direct, ...group]) {
    const row = (await t.ddb.send(new GetCommand({ TableName: t.gateway.tableNames.messages, Key: { pk: `msg#${msgId}`, sk: 'msg' } }))).Item;
    expect(row?.state).toBe('stored');
    if ((row?.positions as Set<string>).size > 1) retried.push(msgId);
  }
  expect(retried.length).toBeGreaterThanOrEqual(5);
  expect(retried.length).toBeLessThan(40);

  // Nothing ended in the dead-letter queue.
  const sqs = new SQSClient({ endpoint: t.gateway.sqsEndpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const dlq = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: t.gateway.deadLetterQueueUrls.uplink, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  expect(Number(dlq.Attributes?.ApproximateNumberOfMessages)).toBe(0);
  sqs.destroy();
  await alice.close();
  await bob.close();
}, 120_000);
