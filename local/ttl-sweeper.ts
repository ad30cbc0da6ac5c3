import { DeleteItemCommand, ScanCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { tables, type TableDeclaration, type TableId } from '../lib/gateway-declaration';

/**
 * DynamoDB Local accepts UpdateTimeToLive but never deletes expired items. The handlers filter
 * expired rows on read anyway (AWS deletes up to days late); this sweeper keeps the local store
 * tidy: every table with a `ttlAttribute` is scanned page by page (following LastEvaluatedKey)
 * for items whose TTL (epoch seconds) is in the past, and each is deleted by key with a
 * condition that it is still expired, so a concurrent refresh (ping) wins.
 */
export class TtlSweeper {
  private timer?: NodeJS.Timeout;
  private running?: Promise<number>;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableNames: Record<TableId, string>,
    private readonly logger: (line: string) => void,
  ) {}

  start(intervalMs: number): void {
    this.timer ??= setInterval(() => {
      this.sweep().catch((err: Error) => this.logger(`TTL sweep failed: ${err.message}`));
    }, intervalMs);
    this.timer.unref();
  }

  /**
   * One sweep over every TTL table that starts after this call (after any sweep still running,
   * so it sees every row expired before the call); resolves with the number of items deleted.
   */
  sweep(): Promise<number> {
    const next: Promise<number> = (this.running ?? Promise.resolve(0))
      .catch(() => 0)
      .then(() => this.sweepAll())
      .finally(() => {
        if (this.running === next) this.running = undefined;
      });
    this.running = next;
    return next;
  }

  private async sweepAll(): Promise<number> {
    let deleted = 0;
    const now = Math.floor(Date.now() / 1000);
    for (const [id, table] of Object.entries(tables) as [TableId, TableDeclaration][]) {
      if (table.ttlAttribute) deleted += await this.sweepTable(this.tableNames[id], table, table.ttlAttribute, now);
    }
    if (deleted > 0) this.logger(`TTL sweep deleted ${deleted} expired item(s)`);
    return deleted;
  }

  private async sweepTable(tableName: string, table: TableDeclaration, ttlAttribute: string, now: number): Promise<number> {
    const keyNames = [table.partitionKey.name, ...(table.sortKey ? [table.sortKey.name] : [])];
    const names: Record<string, string> = { '#ttl': ttlAttribute };
    keyNames.forEach((name, i) => (names[`#k${i}`] = name));
    let deleted = 0;
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        new ScanCommand({
          TableName: tableName,
          ExclusiveStartKey: startKey,
          FilterExpression: '#ttl < :now',
          ProjectionExpression: keyNames.map((_, i) => `#k${i}`).join(', '),
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: { ':now': { N: String(now) } },
        }),
      );
      for (const key of page.Items ?? []) {
        try {
          await this.client.send(
            new DeleteItemCommand({
              TableName: tableName,
              Key: key,
              ConditionExpression: '#ttl < :now',
              ExpressionAttributeNames: { '#ttl': ttlAttribute },
              ExpressionAttributeValues: { ':now': { N: String(now) } },
            }),
          );
          deleted++;
        } catch (err) {
          if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
        }
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return deleted;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }
}
