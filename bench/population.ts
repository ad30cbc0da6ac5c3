import { BenchClient, nowMs } from './bench-client';
import type { BenchSettings } from './settings';

/**
 * The benchmark's users and connections: u_i sends to u_{i+1 mod n} from device 0, and every
 * device of every user is connected, so each message has an audience of all recipient devices
 * plus the sender's other devices (docs/protocol.md).
 */
export interface Population {
  clients: BenchClient[];
  /** Device 0 of every user, in user order. */
  senders: BenchClient[];
  /** Per connection: socket open plus the first ping round trip (after which `$connect` has run). */
  connectMs: number[];
}

export const userIdOf = (index: number): string => `bench-u${index}`;
export const deviceIdOf = (index: number): string => `d${index}`;
export const recipientOf = (senderIndex: number, users: number): string => userIdOf((senderIndex + 1) % users);

/**
 * Opens every connection at once; each is pushed to `opened` as soon as it exists, so a
 * failure later still closes it.
 */
export async function connectPopulation(wsUrl: string, jwtSecret: string, settings: BenchSettings, opened: BenchClient[], timeoutMs: number): Promise<Population> {
  const connectMs: number[] = [];
  const connectOne = async (user: number, device: number) => {
    const startMs = nowMs();
    const client = await BenchClient.connect(wsUrl, userIdOf(user), deviceIdOf(device), jwtSecret, timeoutMs);
    opened.push(client);
    await client.request({ action: 'ping' }, timeoutMs);
    connectMs.push(nowMs() - startMs);
    return client;
  };
  const byUser = await Promise.all(
    Array.from({ length: settings.users }, (_, u) => Promise.all(Array.from({ length: settings.devices }, (_, d) => connectOne(u, d)))),
  );
  return { clients: byUser.flat(), senders: byUser.map((devices) => devices[0]!), connectMs };
}

/** True when `client` should be pushed a message from `senderKey` (user `from`) to user `to`. */
export function isAudience(client: BenchClient, message: { from: string; to: string; senderKey: string }): boolean {
  if (client.userId === message.to) return true;
  return client.userId === message.from && client.key !== message.senderKey;
}
