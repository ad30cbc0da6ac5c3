import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { queues as declaredQueues, type QueueDeclaration, type QueueId } from '../gateway-declaration';
import { constructIdOf, entriesOf } from './declaration-helpers';

export interface GatewayQueuesProps {
  /**
   * The queues to create, keyed by queue id.
   * @default the `queues` of `lib/gateway-declaration.ts`
   */
  readonly queues?: Record<QueueId, QueueDeclaration>;
  /**
   * How long a dead-letter queue keeps a message.
   * @default Duration.days(14) (the SQS maximum)
   */
  readonly deadLetterRetention?: Duration;
}

/**
 * Every SQS queue of the declaration, each with its own dead-letter queue. FIFO queues use
 * high-throughput mode (deduplication and throughput limit per message group) and explicit
 * deduplication ids. All queues are SSE-SQS encrypted and refuse non-TLS requests. A queue
 * declared `retain` (it holds messages already acknowledged to someone) and its dead-letter queue
 * stay when the stack is deleted or the queue replaced.
 */
export class GatewayQueues extends Construct {
  /** The queues, keyed by declared queue id. */
  public readonly queues: Record<QueueId, sqs.Queue>;
  /** The dead-letter queue of each queue, keyed by declared queue id. */
  public readonly deadLetterQueues: Record<QueueId, sqs.Queue>;

  constructor(scope: Construct, id: string, props: GatewayQueuesProps = {}) {
    super(scope, id);
    const declarations: Record<QueueId, QueueDeclaration> = props.queues ?? declaredQueues;
    const queues: Partial<Record<QueueId, sqs.Queue>> = {};
    const deadLetterQueues: Partial<Record<QueueId, sqs.Queue>> = {};

    for (const [queueId, decl] of entriesOf<QueueId, QueueDeclaration>(declarations)) {
      const fifo = decl.fifo ? { fifo: true } : {};
      const dlq = new sqs.Queue(this, `${constructIdOf(queueId)}DeadLetter`, {
        ...fifo,
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: props.deadLetterRetention ?? Duration.days(14),
      });
      const queue = new sqs.Queue(this, constructIdOf(queueId), {
        ...fifo,
        ...(decl.fifo
          ? {
              contentBasedDeduplication: false,
              deduplicationScope: sqs.DeduplicationScope.MESSAGE_GROUP,
              fifoThroughputLimit: sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
            }
          : {}),
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        visibilityTimeout: Duration.seconds(decl.visibilityTimeoutSeconds),
        retentionPeriod: Duration.days(decl.retentionDays),
        deadLetterQueue: { queue: dlq, maxReceiveCount: decl.maxReceiveCount },
      });
      if (decl.retain) {
        // Messages someone was told were taken: kept when the stack is deleted or the queue replaced.
        queue.applyRemovalPolicy(RemovalPolicy.RETAIN);
        dlq.applyRemovalPolicy(RemovalPolicy.RETAIN);
      }
      queues[queueId] = queue;
      deadLetterQueues[queueId] = dlq;
    }
    this.queues = queues as Record<QueueId, sqs.Queue>;
    this.deadLetterQueues = deadLetterQueues as Record<QueueId, sqs.Queue>;
  }
}
