/**
 * Command-line settings of `npm run bench` (flags as `--name value` or `--name=value`).
 * The defaults (messaging, then 1,000 WeChat callbacks, then a broadcast to 1,000 sockets) finish
 * in a few minutes on a 2-core machine.
 */
export interface BenchSettings {
  /** Users u0..u{n-1}; u_i sends to u_{i+1 mod n}. */
  users: number;
  /** Connections per user; device 0 sends, every device receives. */
  devices: number;
  /** Measured messages per sending user. */
  messages: number;
  /** Sends in flight per sending connection (1 = await each ack before the next send). */
  concurrency: number;
  /** Unmeasured messages per sending user before the measurement. */
  warmup: number;
  /** Ping round trips per sending connection, before and again after the send phase. */
  pings: number;
  /** Everything (gateway start included) must finish within this, or the bench aborts. */
  timeoutSeconds: number;
  /** Broadcast phase: sockets that receive the broadcast (0 skips the phase). */
  broadcastConnections: number;
  /** Broadcast phase, throttled runs: the local Management API rate limit, calls per second. */
  broadcastRate: number;
  /** Broadcast phase, throttled runs: the rate limit's burst (bucket size). */
  broadcastBurst: number;
  /** Broadcast phase, naive runs: HTTP connections the Management API client keeps (its agent's maxSockets; the SDK's default is 50). */
  naiveSockets: number;
  /** WeChat phase: signed safe-mode callbacks posted to the gateway (0 skips the phase). */
  wechatCallbacks: number;
  /** WeChat phase: callbacks in flight (HTTP keep-alive connections). */
  wechatConcurrency: number;
  /** Print the local runtime's log lines to stderr. */
  verbose: boolean;
}

export const defaultSettings: BenchSettings = {
  users: 10,
  devices: 2,
  messages: 20,
  concurrency: 1,
  warmup: 10,
  pings: 20,
  timeoutSeconds: 300,
  broadcastConnections: 1000,
  broadcastRate: 100,
  broadcastBurst: 100,
  naiveSockets: 50,
  wechatCallbacks: 1000,
  wechatConcurrency: 10,
  verbose: false,
};

interface IntegerFlag {
  key: Exclude<keyof BenchSettings, 'verbose'>;
  min: number;
  max: number;
  help: string;
}

const integerFlags: Record<string, IntegerFlag> = {
  '--users': { key: 'users', min: 2, max: 1000, help: 'users; u_i sends to u_(i+1 mod users)' },
  '--devices': { key: 'devices', min: 1, max: 10, help: 'connections per user (at most MAX_CONNECTIONS_PER_USER, 10); device 0 sends' },
  '--messages': { key: 'messages', min: 1, max: 100_000, help: 'measured messages per sending user' },
  '--concurrency': { key: 'concurrency', min: 1, max: 100, help: 'sends in flight per sending connection' },
  '--warmup': { key: 'warmup', min: 0, max: 1000, help: 'unmeasured warm-up messages per sending user' },
  '--pings': { key: 'pings', min: 1, max: 10_000, help: 'ping round trips per sender, before and after sending' },
  '--timeout': { key: 'timeoutSeconds', min: 10, max: 3600, help: 'overall time limit in seconds' },
  '--wechat-callbacks': { key: 'wechatCallbacks', min: 0, max: 100_000, help: 'signed safe-mode WeChat callbacks to time; 0 skips the phase' },
  '--wechat-concurrency': { key: 'wechatConcurrency', min: 1, max: 1000, help: 'WeChat callbacks in flight (keep-alive connections)' },
  '--broadcast-connections': { key: 'broadcastConnections', min: 0, max: 10_000, help: 'sockets for the broadcast phase; 0 skips it' },
  '--broadcast-rate': { key: 'broadcastRate', min: 1, max: 100_000, help: 'Management API limit of the throttled broadcasts, calls/s' },
  '--broadcast-burst': { key: 'broadcastBurst', min: 1, max: 100_000, help: 'burst of that limit (token bucket size)' },
  '--naive-sockets': { key: 'naiveSockets', min: 1, max: 10_000, help: 'HTTP connections of the naive posts (50: the SDK agent default)' },
};

export class UsageError extends Error {}

export function usage(): string {
  const lines = Object.entries(integerFlags).map(([flag, f]) => `  ${flag.padEnd(24)} ${f.help} (default ${defaultSettings[f.key]})`);
  return [
    'Usage: npm run bench -- [flags]',
    ...lines,
    `  ${'--verbose'.padEnd(24)} print the local runtime's log to stderr`,
    `  ${'--scale'.padEnd(24)} the scale bench instead, with its own flags (npm run bench -- --scale --help)`,
  ].join('\n');
}

export function parseSettings(argv: string[]): BenchSettings {
  const settings = { ...defaultSettings };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inlineValue] = splitFlag(argv[i]!);
    if (flag === '--verbose') {
      settings.verbose = true;
      continue;
    }
    const spec = integerFlags[flag];
    if (!spec) throw new UsageError(`unknown flag "${flag}"`);
    const raw = inlineValue ?? argv[++i];
    settings[spec.key] = parseInteger(flag, raw, spec);
  }
  return settings;
}

function splitFlag(arg: string): [string, string | undefined] {
  const eq = arg.indexOf('=');
  return eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
}

function parseInteger(flag: string, raw: string | undefined, spec: IntegerFlag): number {
  const value = Number(raw);
  if (raw === undefined || raw === '' || !Number.isInteger(value) || value < spec.min || value > spec.max) {
    throw new UsageError(`${flag} needs an integer from ${spec.min} to ${spec.max}, got "${raw ?? ''}"`);
  }
  return value;
}
