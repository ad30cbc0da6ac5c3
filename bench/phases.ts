import type { LocalGateway } from '../local/local-gateway';
import { nowMs, type BenchClient } from './bench-client';
import { isAudience, recipientOf, type Population } from './population';

/** Long enough for a loaded 2-core machine; a request that takes longer is reported as failed. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Sync pages per device before giving up (100 messages a page). */
const MAX_SYNC_PAGES = 1_000;

export interface SentMessage {
  msgId: string;
  from: string;
  to: string;
  /** The sending connection (`user/device`): it gets the ack, not the message. */
  senderKey: string;
  sentAtMs: number;
  ackedAtMs: number;
}

export interface SendPhase {
  sent: SentMessage[];
  /** Error frames and timeouts, as text. */
  failures: string[];
  startMs: number;
  endMs: number;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** One ping from every connection: after it, `$connect` has run for all of them. */
export async function pingAll(clients: BenchClient[]): Promise<number[]> {
  const replies = await Promise.all(clients.map((client) => client.request({ action: 'ping' }, REQUEST_TIMEOUT_MS)));
  return replies.map((reply) => reply.repliedAtMs - reply.sentAtMs);
}

/**
 * A ping that returns proves, in local mode, that every frame the connection sent before it
 * was handled (frames of a connection run in order, and `send` posts its live deliveries
 * before it returns), and that every frame pushed to the socket before the pong has arrived.
 */
export const barrier = async (clients: BenchClient[]): Promise<void> => void (await pingAll(clients));

/** `count` sequential ping round trips on each connection, all connections at once. */
export async function measurePings(clients: BenchClient[], count: number): Promise<number[]> {
  const perClient = await Promise.all(
    clients.map(async (client) => {
      const samples: number[] = [];
      for (let i = 0; i < count; i++) samples.push(await pingAll([client]).then(([rtt]) => rtt!));
      return samples;
    }),
  );
  return perClient.flat();
}

/** Every sender sends `count` messages to its recipient, `concurrency` in flight each. */
export async function runSendPhase(population: Population, users: number, count: number, concurrency: number, label: string): Promise<SendPhase> {
  const startMs = nowMs();
  const perSender = await Promise.all(population.senders.map((sender, i) => sendFrom(sender, recipientOf(i, users), count, concurrency, label)));
  const endMs = nowMs();
  return { sent: perSender.flatMap((r) => r.sent), failures: perSender.flatMap((r) => r.failures), startMs, endMs };
}

async function sendFrom(sender: BenchClient, to: string, count: number, concurrency: number, label: string): Promise<Omit<SendPhase, 'startMs' | 'endMs'>> {
  const sent: SentMessage[] = [];
  const failures: string[] = [];
  let nextSeq = 0;
  const worker = async () => {
    while (nextSeq < count) {
      const seq = nextSeq++;
      try {
        const reply = await sender.request({ action: 'send', to: { user: to }, body: { bench: label, seq } }, REQUEST_TIMEOUT_MS);
        if (reply.frame.type === 'ack' && typeof reply.frame.msgId === 'string') {
          sent.push({ msgId: reply.frame.msgId, from: sender.userId, to, senderKey: sender.key, sentAtMs: reply.sentAtMs, ackedAtMs: reply.repliedAtMs });
        } else {
          failures.push(`${sender.key}: ${reply.frame.code ?? reply.frame.type}: ${reply.frame.message ?? ''}`);
        }
      } catch (err) {
        failures.push(errorText(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { sent, failures };
}

/**
 * Waits until the sends have been delivered live and stored: returns how long the queue took
 * to drain after the senders finished (the persister's backlog).
 */
export async function settle(gateway: LocalGateway, population: Population, drainTimeoutMs: number): Promise<number> {
  await barrier(population.senders);
  await barrier(population.clients);
  const drainStart = nowMs();
  await gateway.drainQueues(drainTimeoutMs);
  const drainMs = nowMs() - drainStart;
  // The persister pushes to connections opened after a message was sent; let any such push land.
  await barrier(population.clients);
  return drainMs;
}

/** The msgIds of a device's whole inbox, following `next` page by page. */
export async function syncInbox(client: BenchClient): Promise<Set<string>> {
  const msgIds = new Set<string>();
  let after: string | undefined;
  for (let page = 0; page < MAX_SYNC_PAGES; page++) {
    const { frame } = await client.request({ action: 'sync', limit: 100, ...(after ? { after } : {}) }, REQUEST_TIMEOUT_MS);
    if (frame.type !== 'sync') throw new Error(`${client.key}: sync answered ${JSON.stringify(frame)}`);
    for (const message of frame.messages as Array<{ msgId: string }>) msgIds.add(message.msgId);
    if (!frame.next) return msgIds;
    after = frame.next as string;
  }
  throw new Error(`${client.key}: sync still had a next page after ${MAX_SYNC_PAGES} pages`);
}

export interface DeliveryCheck {
  /** Acked messages x audience devices. */
  expected: number;
  deliveredLive: number;
  /** Not received live, but returned by `sync` on that device. */
  recoveredViaSync: number;
  /** Acked, yet neither received live nor returned by `sync`. */
  lost: number;
  /** Extra copies of a msgId on one device (at-least-once allows them). */
  duplicates: number;
  /** Copies on a connection outside the audience (e.g. the sending connection). */
  unexpected: number;
  /** (message, device) pairs missing from that device's sync, live delivery or not. */
  missingFromSync: number;
  /** Receive time minus send time, first copy per device. */
  endToEndMs: number[];
  lastLiveReceiveMs: number;
  /** A few examples of lost deliveries. */
  lostExamples: string[];
}

/** Compares what every device got live, and what its sync returns, against the acked messages. */
export async function checkDelivery(population: Population, sent: SentMessage[]): Promise<DeliveryCheck> {
  const inboxes = new Map(await Promise.all(population.clients.map(async (c) => [c.key, await syncInbox(c)] as const)));
  const check: DeliveryCheck = {
    expected: 0,
    deliveredLive: 0,
    recoveredViaSync: 0,
    lost: 0,
    duplicates: 0,
    unexpected: 0,
    missingFromSync: 0,
    endToEndMs: [],
    lastLiveReceiveMs: 0,
    lostExamples: [],
  };
  for (const message of sent) {
    for (const client of population.clients) {
      const copies = client.received.get(message.msgId) ?? [];
      if (!isAudience(client, message)) {
        check.unexpected += copies.length;
        continue;
      }
      const inSync = inboxes.get(client.key)!.has(message.msgId);
      check.expected++;
      if (!inSync) check.missingFromSync++;
      if (copies.length > 0) {
        check.deliveredLive++;
        check.duplicates += copies.length - 1;
        check.endToEndMs.push(copies[0]! - message.sentAtMs);
        check.lastLiveReceiveMs = Math.max(check.lastLiveReceiveMs, copies[0]!);
      } else if (inSync) {
        check.recoveredViaSync++;
      } else {
        check.lost++;
        if (check.lostExamples.length < 10) check.lostExamples.push(`${message.msgId} ${message.from}->${message.to} not on ${client.key}`);
      }
    }
  }
  return check;
}
