/**
 * Settings of `npm run bench -- --scale` (bench/scale.ts, docs/performance.md "Scale"): flags as
 * `--name value` or `--name=value`. The defaults (10,000 connections, a 60 s mixed workload)
 * finish in about 5 minutes on a 2-core machine.
 */
export interface ScaleSettings {
  /** Connections to open (the target; the bench reports how many it reached). */
  connections: number;
  /** Connections per user (1 = one user per connection; at most MAX_CONNECTIONS_PER_USER, 10). */
  devices: number;
  /** Connects started per second, kept under the declared `$connect` throttle (400/s, burst 800). */
  connectRate: number;
  /** Connects in flight at most (the pacing also waits for them). */
  connectConcurrency: number;
  /** Mixed workload: seconds (0 = connect, measure the cost of connecting, close). */
  durationSeconds: number;
  /** Every connection pings once per this many seconds during the mixed workload (real clients: 300). */
  pingIntervalSeconds: number;
  /** Sends to one user per second (random sender and recipient). */
  p2pRate: number;
  /** Sends to a group per second (random group, random member as sender). */
  groupRate: number;
  /** `sync` requests per second (random connection, from its last cursor). */
  syncRate: number;
  /** 1: one `POST /v1/push {"to":{"all":true}}` a third into the mixed workload; 0: none. */
  broadcast: number;
  /** Groups created through the admin API before the workload. */
  groups: number;
  /** Members per group (users). */
  groupSize: number;
  /** 1: start the gateway with its cost meter (when local mode has one) and measure units per operation. */
  meter: number;
  /** Operations per isolated cost window (pings, p2p sends, syncs; group sends: a fifth of it). */
  costOps: number;
  /** 1: one more broadcast to every connection in its own cost window (its units and its time with nothing else running). */
  costBroadcast: number;
  /** Everything must finish within this, or the bench stops everything and exits 2. */
  timeoutSeconds: number;
  /** Print the local runtime's log to stderr. */
  verbose: boolean;
}

export const defaultScaleSettings: ScaleSettings = {
  connections: 10_000,
  devices: 1,
  connectRate: 300,
  connectConcurrency: 100,
  durationSeconds: 60,
  pingIntervalSeconds: 60,
  p2pRate: 20,
  groupRate: 2,
  syncRate: 10,
  broadcast: 1,
  groups: 20,
  groupSize: 50,
  meter: 1,
  costOps: 100,
  costBroadcast: 1,
  timeoutSeconds: 900,
  verbose: false,
};

interface IntegerFlag {
  key: Exclude<keyof ScaleSettings, 'verbose'>;
  min: number;
  max: number;
  help: string;
}

const integerFlags: Record<string, IntegerFlag> = {
  '--connections': { key: 'connections', min: 10, max: 60_000, help: 'connections to open (the target)' },
  '--devices': { key: 'devices', min: 1, max: 10, help: 'connections per user (at most MAX_CONNECTIONS_PER_USER, 10)' },
  '--connect-rate': { key: 'connectRate', min: 1, max: 400, help: 'connects started per second (the declared $connect throttle is 400/s, burst 800)' },
  '--connect-concurrency': { key: 'connectConcurrency', min: 1, max: 2000, help: 'connects in flight at most' },
  '--duration': { key: 'durationSeconds', min: 0, max: 1800, help: 'seconds of mixed workload (0: connect and close only)' },
  '--ping-interval': { key: 'pingIntervalSeconds', min: 1, max: 3600, help: 'every connection pings once per this many seconds (real clients: 300)' },
  '--p2p-rate': { key: 'p2pRate', min: 0, max: 1500, help: 'sends to one user per second' },
  '--group-rate': { key: 'groupRate', min: 0, max: 1500, help: 'sends to a group per second' },
  '--sync-rate': { key: 'syncRate', min: 0, max: 400, help: 'sync requests per second' },
  '--broadcast': { key: 'broadcast', min: 0, max: 1, help: '1: one broadcast to all a third into the workload' },
  '--groups': { key: 'groups', min: 0, max: 1000, help: 'groups created through the admin API' },
  '--group-size': { key: 'groupSize', min: 2, max: 1000, help: 'members per group' },
  '--meter': { key: 'meter', min: 0, max: 1, help: "1: run with local mode's cost meter and report units per operation" },
  '--cost-ops': { key: 'costOps', min: 5, max: 10_000, help: 'operations per isolated cost window' },
  '--cost-broadcast': { key: 'costBroadcast', min: 0, max: 1, help: '1: a second broadcast alone, in its own cost window' },
  '--timeout': { key: 'timeoutSeconds', min: 30, max: 7200, help: 'overall limit in seconds' },
};

export class ScaleUsageError extends Error {}

export function scaleUsage(): string {
  const lines = Object.entries(integerFlags).map(([flag, f]) => `  ${flag.padEnd(24)} ${f.help} (default ${defaultScaleSettings[f.key]})`);
  return [
    'Usage: npm run bench -- --scale [flags]   (docs/performance.md, "Scale")',
    ...lines,
    `  ${'--verbose'.padEnd(24)} print the local runtime's log to stderr`,
  ].join('\n');
}

/** `argv` without `--scale`. */
export function parseScaleSettings(argv: string[]): ScaleSettings {
  const settings = { ...defaultScaleSettings };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const [flag, inlineValue] = eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    if (flag === '--verbose') {
      settings.verbose = true;
      continue;
    }
    const spec = integerFlags[flag];
    if (!spec) throw new ScaleUsageError(`unknown flag "${flag}" for --scale`);
    const raw = inlineValue ?? argv[++i];
    const value = Number(raw);
    if (raw === undefined || raw === '' || !Number.isInteger(value) || value < spec.min || value > spec.max) {
      throw new ScaleUsageError(`${flag} needs an integer from ${spec.min} to ${spec.max}, got "${raw ?? ''}"`);
    }
    settings[spec.key] = value;
  }
  const users = Math.ceil(settings.connections / settings.devices);
  if (settings.groups * settings.groupSize > 0 && settings.groupSize > users) throw new ScaleUsageError(`--group-size ${settings.groupSize} is more than the ${users} users`);
  return settings;
}
