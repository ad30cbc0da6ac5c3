import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { buildApp } from 'fauxqs';
import { queues, type QueueDeclaration, type QueueId } from '../lib/gateway-declaration';
import { LOCAL_CREDENTIALS, LOCAL_REGION, localResourceName } from './local-names';

/**
 * The SQS emulator (fauxqs, JSON protocol, FIFO groups, visibility timeout, redrive to DLQ),
 * bound to 127.0.0.1 on a free port, with every declared queue and its dead-letter queue.
 *
 * Queue URLs: fauxqs names queues `http://sqs.<region>.localhost:<port>/...` by default, and the
 * SDK's SQS client sends each request to the QueueUrl's host when no `endpoint` is configured in
 * code (AWS_ENDPOINT_URL_SQS does not count). `sqs.us-east-1.localhost` does not resolve on
 * every machine, so local mode gives fauxqs stores whose host is empty: the URLs then carry the
 * host the request came to, `127.0.0.1:<port>`, and work from the handlers and any other tool.
 * fauxqs exports `buildApp({ stores })` but not the store classes, hence the import by file.
 */
export interface SqsEngine {
  endpoint: string;
  client: SQSClient;
  queueUrls: Record<QueueId, string>;
  deadLetterQueueUrls: Record<QueueId, string>;
  queueArns: Record<QueueId, string>;
  stop(): Promise<void>;
}

export interface SqsEngineOptions {
  logger: (line: string) => void;
  /** Overrides every declared visibility timeout (tests use a short one). */
  visibilityTimeoutSeconds?: number;
}

type Store = { host?: string };
type StoreModule = Record<string, new () => Store>;

function fauxqsDist(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = join(here, '..'); ; dir = dirname(dir)) {
    const dist = join(dir, 'node_modules', 'fauxqs', 'dist');
    if (existsSync(join(dist, 'sqs', 'sqsStore.js'))) return dist;
    if (dirname(dir) === dir) throw new Error('fauxqs not found: is the dev dependency `fauxqs` installed (npm install)?');
  }
}

async function loopbackStores() {
  const dist = fauxqsDist();
  const load = async (path: string, name: string) => {
    const mod = (await import(pathToFileURL(join(dist, path)).href)) as StoreModule;
    return new mod[name]!();
  };
  const sqsStore = await load('sqs/sqsStore.js', 'SqsStore');
  sqsStore.host = ''; // queue URLs use the request's Host header: http://127.0.0.1:<port>/000000000000/<name>
  const snsStore = await load('sns/snsStore.js', 'SnsStore');
  const s3Store = await load('s3/s3Store.js', 'S3Store');
  return { sqsStore, snsStore, s3Store };
}

export const queueName = (id: QueueId, fifo: boolean, deadLetter = false): string =>
  `${localResourceName(id)}${deadLetter ? '-dlq' : ''}${fifo ? '.fifo' : ''}`;

export async function startSqsEngine(options: SqsEngineOptions): Promise<SqsEngine> {
  const stores = await loopbackStores();
  const app = buildApp({ logger: false, defaultRegion: LOCAL_REGION, stores: stores as never });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new SQSClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  const stop = async () => {
    client.destroy();
    await app.close();
  };
  try {
    const queueUrls = {} as Record<QueueId, string>;
    const deadLetterQueueUrls = {} as Record<QueueId, string>;
    const queueArns = {} as Record<QueueId, string>;
    for (const [id, queue] of Object.entries(queues) as [QueueId, QueueDeclaration][]) {
      const fifoAttributes: Record<string, string> = queue.fifo ? { FifoQueue: 'true', ContentBasedDeduplication: 'false' } : {};
      const retention = String(Math.min(queue.retentionDays, 14) * 86_400);
      const dlq = await client.send(
        new CreateQueueCommand({ QueueName: queueName(id, queue.fifo, true), Attributes: { ...fifoAttributes, MessageRetentionPeriod: String(14 * 86_400) } }),
      );
      const dlqArn = (await client.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }))).Attributes?.QueueArn;
      const main = await client.send(
        new CreateQueueCommand({
          QueueName: queueName(id, queue.fifo),
          Attributes: {
            ...fifoAttributes,
            VisibilityTimeout: String(options.visibilityTimeoutSeconds ?? queue.visibilityTimeoutSeconds),
            MessageRetentionPeriod: retention,
            RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: queue.maxReceiveCount }),
          },
        }),
      );
      const arn = (await client.send(new GetQueueAttributesCommand({ QueueUrl: main.QueueUrl, AttributeNames: ['QueueArn'] }))).Attributes?.QueueArn;
      queueUrls[id] = main.QueueUrl!;
      deadLetterQueueUrls[id] = dlq.QueueUrl!;
      queueArns[id] = arn!;
    }
    options.logger(`SQS emulator (fauxqs) on ${endpoint}: queues ${Object.values(queueUrls).join(', ')}`);
    return { endpoint, client, queueUrls, deadLetterQueueUrls, queueArns, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
