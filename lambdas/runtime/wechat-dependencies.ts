import { DynamoOutboundStore } from '../adapters/dynamo-outbound-store';
import { SqsWechatOutboundQueue } from '../adapters/sqs-wechat-outbound-queue';
import { systemClock } from '../domain/clock';
import { notifyRequester, type OutboundWorkerDeps, type SubmitDeps } from '../domain/wechat-outbound';
import { dynamoDocumentClient, sqs } from './aws-clients';
import { queueUrl, tableName } from './config';
import { accessTokens, connectionRegistry, deliveryDeps, wechatApis } from './dependencies';
import { currentCorrelationId, logger } from './observability';
import { loadWechatAccounts } from './wechat-accounts-source';

/** Outbound WeChat messages (domain/wechat-outbound.ts), wired once per Lambda instance like dependencies.ts. */
let store: DynamoOutboundStore | undefined;
let queue: SqsWechatOutboundQueue | undefined;

export const outboundStore = (): DynamoOutboundStore => (store ??= new DynamoOutboundStore(dynamoDocumentClient(), tableName('wechat')));
const outboundQueue = (): SqsWechatOutboundQueue => (queue ??= new SqsWechatOutboundQueue(sqs(), queueUrl('wechatOutbound'), currentCorrelationId));
/** The outbound queue for the retries of one record, which carry that record's correlation id (the worker handles records in parallel). */
export const outboundQueueUnder = (correlationId: string): SqsWechatOutboundQueue => new SqsWechatOutboundQueue(sqs(), queueUrl('wechatOutbound'), () => correlationId);

export const outboundSubmitDeps = (): SubmitDeps => ({ store: outboundStore(), queue: outboundQueue(), clock: systemClock });

export const outboundWorkerDeps = (): OutboundWorkerDeps => {
  const notify = { registry: connectionRegistry(), delivery: deliveryDeps(), clock: systemClock };
  return {
    store: outboundStore(),
    queue: outboundQueue(),
    accounts: loadWechatAccounts,
    tokens: accessTokens(),
    api: wechatApis(),
    clock: systemClock,
    random: Math.random,
    // The state is settled already: a status frame that cannot be posted is logged, not retried.
    notify: (record, frame) =>
      notifyRequester(notify, record, frame).catch((error: unknown) => logger.warn('status frame not delivered', { id: record.id, error: error as Error })),
  };
};
