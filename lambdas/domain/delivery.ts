import type { ConnectionRecord, ConnectionRegistry, OpenedRange } from './connection-registry';
import type { ConnectionSender } from './messaging-ports';
import { mapWithConcurrency } from './concurrency';

const USER_LOOKUP_CONCURRENCY = 16;

/**
 * Pushes one payload to many connections through the Management API, with bounded
 * concurrency. A 410 removes that connection's row (only while it still belongs to the same
 * user); 429 and 5xx are retried with full-jitter exponential backoff a bounded number of
 * times, because API Gateway's account-wide throttle is shared with every other API call.
 */
export interface DeliveryDeps {
  sender: ConnectionSender;
  registry: ConnectionRegistry;
  concurrency: number;
  maxAttempts: number;
  baseDelayMs: number;
  sleep: (ms: number) => Promise<void>;
  random: () => number;
  /** Waits for a post slot (fan-out jobs pace themselves under a post budget); none for live delivery. */
  pace?: () => Promise<void>;
  /** Told about every throttled (429) or failed (5xx) post, so a pacer can slow down. */
  onRetryable?: () => void;
  /** Upper bound of one backoff wait, default unbounded. */
  maxDelayMs?: number;
}

/** Who a post goes to: the connection, and its user (a 410 removes the row only while it is still theirs). */
export type DeliveryTarget = Pick<ConnectionRecord, 'connectionId' | 'userId'>;

export interface DeliveryReport {
  targeted: number;
  delivered: number;
  gone: number;
  failed: number;
}

export const emptyReport = (): DeliveryReport => ({ targeted: 0, delivered: 0, gone: 0, failed: 0 });

export const defaultDeliverySettings = { concurrency: 32, maxAttempts: 4, baseDelayMs: 50 } as const;

/** One post, retried on 429/5xx with full-jitter exponential backoff, at most `maxAttempts` times. */
export async function postWithRetry(
  deps: Pick<DeliveryDeps, 'sender' | 'maxAttempts' | 'baseDelayMs' | 'sleep' | 'random' | 'pace' | 'onRetryable' | 'maxDelayMs'>,
  connectionId: string,
  payload: string,
) {
  for (let attempt = 1; ; attempt++) {
    if (attempt > 1 && deps.pace) await deps.pace(); // a retry spends budget too
    const outcome = await deps.sender.post(connectionId, payload);
    if (outcome === 'retryable') deps.onRetryable?.();
    if (outcome !== 'retryable' || attempt >= deps.maxAttempts) return outcome;
    await deps.sleep(deps.random() * Math.min(deps.maxDelayMs ?? Infinity, deps.baseDelayMs * 2 ** (attempt - 1)));
  }
}

export async function deliver(deps: DeliveryDeps, targets: readonly DeliveryTarget[], payload: string): Promise<DeliveryReport> {
  const report = { ...emptyReport(), targeted: targets.length };
  await mapWithConcurrency(targets, deps.concurrency, async (target) => {
    if (deps.pace) await deps.pace();
    const outcome = await postWithRetry(deps, target.connectionId, payload).catch(() => 'rejected' as const);
    if (outcome === 'ok') report.delivered++;
    else if (outcome === 'gone') {
      report.gone++;
      await deps.registry.removeStale(target.connectionId, target.userId).catch(() => false);
    } else report.failed++;
  });
  return report;
}

/** Connections of several users, each once, minus the ones to skip (e.g. the sending socket). */
export async function connectionsOf(
  registry: ConnectionRegistry,
  userIds: Iterable<string>,
  nowMs: number,
  skip: (record: ConnectionRecord) => boolean = () => false,
  opened?: OpenedRange,
): Promise<ConnectionRecord[]> {
  const unique = [...new Set(userIds)];
  const lists = await mapWithConcurrency(unique, USER_LOOKUP_CONCURRENCY, (userId) => registry.listByUser(userId, nowMs, opened));
  return lists.flat().filter((record) => !skip(record));
}
