import { ConditionalCheckFailedException, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, TransactWriteCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { NonceStore } from '../domain/admin-auth';
import type { JobCounters, JobRecord, JobStore } from '../domain/fanout';

/**
 * The admin table (lib/gateway-declaration.ts `tables.admin`):
 *   nonce#{keyId}#{nonce} / nonce     a used request nonce, until its timestamp leaves the window
 *   job#{jobId}           / job       state, counters, tasksOpen and the frame of a fan-out job
 *   job#{jobId}           / task#{id} a completed task (so a retried task never counts twice)
 */
const jobKey = (jobId: string) => ({ pk: `job#${jobId}`, sk: 'job' });
const taskKey = (jobId: string, taskId: string) => ({ pk: `job#${jobId}`, sk: `task#${taskId}` });

const isConditionFailure = (err: unknown) => err instanceof ConditionalCheckFailedException;

export class DynamoAdminStore implements NonceStore, JobStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async claimNonce(keyId: string, nonce: string, expiresAt: number, nowSeconds: number): Promise<boolean> {
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { pk: `nonce#${keyId}#${nonce}`, sk: 'nonce', expiresAt },
          // A row past its expiry (TTL lags) no longer protects anything.
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now',
          ExpressionAttributeValues: { ':now': nowSeconds },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async createJob(job: { jobId: string; msgId: string; payload: string; tasksOpen: number; createdAt: number; expiresAt: number }): Promise<void> {
    await this.client.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { ...jobKey(job.jobId), msgId: job.msgId, payload: job.payload, state: 'queued', tasksOpen: job.tasksOpen, createdAt: job.createdAt, expiresAt: job.expiresAt, targeted: 0, delivered: 0, gone: 0, failed: 0 },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
  }

  async getJob(jobId: string): Promise<JobRecord | undefined> {
    const { Item } = await this.client.send(new GetCommand({ TableName: this.tableName, Key: jobKey(jobId), ConsistentRead: true }));
    if (!Item) return undefined;
    return {
      jobId,
      msgId: Item.msgId as string,
      state: Item.state as JobRecord['state'],
      tasksOpen: Item.tasksOpen as number,
      createdAt: Item.createdAt as number,
      payload: Item.payload as string,
      targeted: Item.targeted as number,
      delivered: Item.delivered as number,
      gone: Item.gone as number,
      failed: Item.failed as number,
    };
  }

  private async setState(jobId: string, to: string, condition: string, values: Record<string, unknown>): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: jobKey(jobId),
          UpdateExpression: 'SET #s = :to',
          ConditionExpression: condition,
          ExpressionAttributeNames: { '#s': 'state' },
          ExpressionAttributeValues: { ':to': to, ...values },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async markRunning(jobId: string): Promise<void> {
    await this.setState(jobId, 'running', '#s = :queued', { ':queued': 'queued' });
  }

  async markFailed(jobId: string): Promise<void> {
    await this.setState(jobId, 'failed', '#s <> :done', { ':done': 'done' });
  }

  finishIfDone(jobId: string): Promise<boolean> {
    return this.setState(jobId, 'done', 'tasksOpen = :zero AND #s IN (:queued, :running)', { ':zero': 0, ':queued': 'queued', ':running': 'running' });
  }

  async isTaskDone(jobId: string, taskId: string): Promise<boolean> {
    const { Item } = await this.client.send(new GetCommand({ TableName: this.tableName, Key: taskKey(jobId, taskId), ConsistentRead: true }));
    return Item !== undefined;
  }

  async openChildren(jobId: string, taskId: string, count: number, expiresAt: number): Promise<void> {
    try {
      await this.client.send(
        new TransactWriteCommand({
          TransactItems: [
            { Put: { TableName: this.tableName, Item: { ...taskKey(jobId, `${taskId}#opened`), expiresAt, count }, ConditionExpression: 'attribute_not_exists(pk)' } },
            { Update: { TableName: this.tableName, Key: jobKey(jobId), UpdateExpression: 'ADD tasksOpen :n', ExpressionAttributeValues: { ':n': count } } },
          ],
        }),
      );
    } catch (err) {
      // Already opened by an earlier run of this task: nothing more to count.
      if (err instanceof TransactionCanceledException && err.CancellationReasons?.[0]?.Code === 'ConditionalCheckFailed') return;
      throw err;
    }
  }

  async completeTask(jobId: string, taskId: string, counts: JobCounters, opened: number, expiresAt: number): Promise<boolean> {
    try {
      await this.client.send(
        new TransactWriteCommand({
          TransactItems: [
            { Put: { TableName: this.tableName, Item: { ...taskKey(jobId, taskId), expiresAt, ...counts }, ConditionExpression: 'attribute_not_exists(pk)' } },
            {
              Update: {
                TableName: this.tableName,
                Key: jobKey(jobId),
                UpdateExpression: 'ADD targeted :t, delivered :d, gone :g, failed :f, tasksOpen :o',
                ExpressionAttributeValues: { ':t': counts.targeted, ':d': counts.delivered, ':g': counts.gone, ':f': counts.failed, ':o': opened - 1 },
              },
            },
          ],
        }),
      );
      return true;
    } catch (err) {
      // Cancelled because the marker exists: a retried task that already counted.
      if (err instanceof TransactionCanceledException && err.CancellationReasons?.[0]?.Code === 'ConditionalCheckFailed') return false;
      throw err;
    }
  }
}
