import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { consoleHandler } from '../console/server';
import { callAdmin, LOCAL_URL, segment, targetFromEnv, UsageError, type AdminAnswer, type AdminTarget } from './admin-http';

/**
 * The `wxgate` command (docs/admin-api.md, "The wxgate CLI"): one subcommand per admin API
 * endpoint. The answer's JSON goes to stdout; errors and progress go to stderr.
 * Exit status: 0 success, 1 the API answered non-2xx (or could not be reached, or a waited-for
 * job failed or outlasted --timeout), 2 bad usage.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** `wxgate console` serves until this resolves; default: SIGINT or SIGTERM. */
  untilStopped?: () => Promise<void>;
}

interface WaitOptions {
  wait?: boolean;
  interval: number;
  timeout?: number;
}

interface Job {
  jobId: string;
  msgId: string;
  state: 'queued' | 'running' | 'done' | 'failed';
  targeted: number;
  delivered: number;
  gone: number;
  failed: number;
}

/** A non-2xx answer: its JSON (or text) goes to stderr as it came. */
class ApiError extends Error {
  constructor(readonly answer: AdminAnswer) {
    super(`HTTP ${answer.status}`);
  }
}

const ENVIRONMENT_HELP = `
Environment:
  WXGATE_URL         admin API base URL (default http://127.0.0.1:3000, local mode)
  WXGATE_KEY_ID      admin key id (default "local")
  WXGATE_KEY_SECRET  admin key secret (default the local key's secret, for key id "local" only)
  WXGATE_WS_URL      console: the WebSocket API URL (default ws://127.0.0.1:3001 with the local URL)

Exit status: 0 success; 1 the API answered non-2xx (the error JSON on stderr), could not be
reached, or a waited-for job failed or outlasted --timeout; 2 bad usage.`;

const integer = (name: string, min: number, max: number) => (raw: string) => {
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}.`);
  }
  return value;
};

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

function jsonBody(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new InvalidArgumentError(`not valid JSON: ${raw.length > 60 ? `${raw.slice(0, 60)}…` : raw}`);
  }
}

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const sleep = io.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const now = io.now ?? Date.now;
  const print = (value: unknown) => io.stdout(`${JSON.stringify(value, null, 2)}\n`);
  let target: AdminTarget | undefined;
  const admin = () => (target ??= targetFromEnv(io.env));

  async function call(method: string, pathWithQuery: string, payload?: unknown): Promise<any> {
    const answer = await callAdmin(admin(), method, pathWithQuery, payload, io.fetch);
    if (!answer.ok) throw new ApiError(answer);
    return answer.body;
  }

  const progress = (job: Job) => `job ${job.jobId} ${job.state}: targeted ${job.targeted}, delivered ${job.delivered}, gone ${job.gone}, failed ${job.failed}`;

  /**
   * Polls the job until done or failed (or `timeoutSeconds` passed), a progress line on stderr
   * whenever it changed. A job whose task ended in the fan-out dead-letter queue stays `running`.
   */
  async function waitForJob(jobId: string, options: WaitOptions): Promise<Job> {
    const deadline = options.timeout === undefined ? Infinity : now() + options.timeout * 1000;
    let last = '';
    for (;;) {
      const job = (await call('GET', `/v1/jobs/${segment(jobId)}`)) as Job;
      const line = progress(job);
      if (line !== last) io.stderr(`${line}\n`);
      last = line;
      if (job.state === 'done' || job.state === 'failed') return job;
      if (now() >= deadline) {
        io.stderr(`job ${jobId} is still ${job.state} after ${options.timeout} s; stopped waiting\n`);
        return job;
      }
      await sleep(options.interval);
    }
  }

  let exitCode: number = EXIT.ok;
  /** The final job on stdout; anything but `done` exits 1. */
  const finishJob = (job: Job) => {
    print(job);
    if (job.state !== 'done') exitCode = EXIT.failed;
  };

  const program = new Command('wxgate')
    .description('Call the wxgate admin API with a signed request and print its JSON answer.')
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', ENVIRONMENT_HELP);

  program
    .command('token')
    .description('mint a client token (POST /v1/tokens)')
    .argument('<userId>', 'the user the token is for (its sub)')
    .option('--device <deviceId>', 'device id (its did; the gateway defaults to "default")')
    .option('--ttl <seconds>', 'lifetime in seconds, 60 to 2592000 (the gateway defaults to 3600)', integer('--ttl', 60, 30 * 86_400))
    .action(async (userId: string, options: { device?: string; ttl?: number }) => {
      print(await call('POST', '/v1/tokens', { userId, ...(options.device ? { deviceId: options.device } : {}), ...(options.ttl ? { ttlSeconds: options.ttl } : {}) }));
    });

  program
    .command('push')
    .description('push a message to users, a group or everyone online (POST /v1/push)')
    .addOption(new Option('--user <userId>', 'a recipient; repeat for several (up to 100 answer at once, more run as a job)').argParser(collect))
    .addOption(new Option('--group <groupId>', 'every member of the group').conflicts(['user', 'all']))
    .addOption(new Option('--all', 'every online connection (always a job; not stored)').conflicts(['user', 'group']))
    .requiredOption('--body <json>', 'the message body, JSON (at most 32 KiB)', jsonBody)
    .option('--wait', 'when the push runs as a job, poll it until done or failed and print the final job')
    .option('--interval <ms>', 'how often --wait polls', integer('--interval', 50, 60_000), 500)
    .option('--timeout <seconds>', 'stop waiting after this long (exit 1); default: until done or failed', integer('--timeout', 1, 86_400))
    .action(async (options: { user?: string[]; group?: string; all?: boolean; body: unknown } & WaitOptions, command: Command) => {
      const chosen = [options.user !== undefined, options.group !== undefined, options.all === true].filter(Boolean).length;
      if (chosen !== 1) command.error('error: say who gets it: --user (repeatable), --group or --all, exactly one of them', { exitCode: EXIT.usage });
      const to = options.all ? { all: true } : options.group !== undefined ? { group: options.group } : { users: options.user! };
      const answer = (await call('POST', '/v1/push', { to, body: options.body })) as { jobId?: string; msgId: string };
      if (!options.wait || answer.jobId === undefined) return print(answer);
      io.stderr(`job ${answer.jobId} started for message ${answer.msgId}\n`);
      finishJob(await waitForJob(answer.jobId, options));
    });

  program
    .command('job')
    .description('show a fan-out job (GET /v1/jobs/{jobId})')
    .argument('<jobId>')
    .option('--wait', 'poll until done or failed, then print the final job')
    .option('--interval <ms>', 'how often --wait polls', integer('--interval', 50, 60_000), 500)
    .option('--timeout <seconds>', 'stop waiting after this long (exit 1); default: until done or failed', integer('--timeout', 1, 86_400))
    .action(async (jobId: string, options: WaitOptions) => {
      if (options.wait) finishJob(await waitForJob(jobId, options));
      else print(await call('GET', `/v1/jobs/${segment(jobId)}`));
    });

  program
    .command('connections')
    .description("list a user's live connections (GET /v1/users/{userId}/connections)")
    .argument('<userId>')
    .action(async (userId: string) => print(await call('GET', `/v1/users/${segment(userId)}/connections`)));

  program
    .command('kick')
    .description("close every connection of a user (DELETE /v1/users/{userId}/connections)")
    .argument('<userId>')
    .action(async (userId: string) => print(await call('DELETE', `/v1/users/${segment(userId)}/connections`)));

  program
    .command('members')
    .description('change a group (PUT /v1/groups/{groupId}/members) or, without --add/--remove, list a page of it (GET)')
    .argument('<groupId>')
    .option('--add <userIds...>', 'users to add')
    .option('--remove <userIds...>', 'users to remove')
    .option('--limit <n>', 'listing: page size, 1 to 1000 (default 100)', integer('--limit', 1, 1000))
    .option('--after <userId>', 'listing: start after this member (the `next` of the previous page)')
    .action(async (groupId: string, options: { add?: string[]; remove?: string[]; limit?: number; after?: string }, command: Command) => {
      const changing = options.add !== undefined || options.remove !== undefined;
      if (changing && (options.limit !== undefined || options.after !== undefined)) {
        command.error('error: --limit and --after page a listing; they do not go with --add/--remove', { exitCode: EXIT.usage });
      }
      if (changing) {
        print(await call('PUT', `/v1/groups/${segment(groupId)}/members`, { ...(options.add ? { add: options.add } : {}), ...(options.remove ? { remove: options.remove } : {}) }));
        return;
      }
      const query = new URLSearchParams();
      if (options.limit !== undefined) query.set('limit', String(options.limit));
      if (options.after !== undefined) query.set('after', options.after);
      print(await call('GET', `/v1/groups/${segment(groupId)}/members${query.size ? `?${query}` : ''}`));
    });

  program
    .command('stats')
    .description('online connections and users (GET /v1/stats)')
    .action(async () => print(await call('GET', '/v1/stats')));

  program
    .command('console')
    .description('serve the web console on 127.0.0.1 for a stack: the browser gets client tokens, the admin key stays here (docs/console.md)')
    .option('--url <HttpApiUrl>', 'the admin API base URL, the stack output HttpApiUrl (default WXGATE_URL, else local mode)')
    .option('--ws <url>', 'the WebSocket API URL the page connects to, the stack output WebSocketUrl (default WXGATE_WS_URL)')
    .option('--port <port>', 'the port on 127.0.0.1, 0 for any free one', integer('--port', 0, 65_535), 3100)
    .action(async (options: { url?: string; ws?: string; port: number }, command: Command) => {
      const api = targetFromEnv({ ...io.env, ...(options.url ? { WXGATE_URL: options.url } : {}) });
      const ws = options.ws ?? (io.env.WXGATE_WS_URL || (api.baseUrl === LOCAL_URL ? 'ws://127.0.0.1:3001' : undefined));
      if (!ws) command.error('error: --ws <url> (or WXGATE_WS_URL) is required: the stack output WebSocketUrl, e.g. wss://abc123.execute-api.eu-west-1.amazonaws.com/live', { exitCode: EXIT.usage });
      let wsUrl: URL;
      try {
        wsUrl = new URL(ws!);
        if (wsUrl.protocol !== 'ws:' && wsUrl.protocol !== 'wss:') throw new Error();
      } catch {
        throw new UsageError(`--ws must be a ws:// or wss:// URL, got "${ws}"`);
      }
      // The link carries this session secret: other users of the machine cannot use the console's key.
      const session = randomBytes(24).toString('base64url');
      const handle = consoleHandler({
        apiUrl: () => api.baseUrl,
        wsUrl: () => wsUrl.href.replace(/\/$/, ''),
        keyId: api.keyId,
        secret: api.secret,
        mode: ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(api.baseUrl).hostname) ? 'local' : 'deployed',
        session,
        ...(io.fetch ? { fetch: io.fetch } : {}),
      });
      const server = createServer((req, res) => {
        handle(req, res)
          .then((done) => {
            if (done) return;
            req.resume();
            if (req.url === '/') res.writeHead(302, { location: '/console' }).end();
            else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the console is at /console\n');
          })
          .catch((err: Error) => {
            io.stderr(`console: ${err.stack ?? err.message}\n`);
            if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
            else res.destroy();
          });
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) =>
          reject(err.code === 'EADDRINUSE' ? new UsageError(`port ${options.port} is in use; pick another with --port (0 = any free port)`) : err),
        );
        server.listen(options.port, '127.0.0.1', () => resolve());
      });
      const { port } = server.address() as { port: number };
      io.stderr(
        `wxgate console: open the link below (it carries this run's session). Admin calls go to ${api.baseUrl}, signed here with key "${api.keyId}"; ` +
          `the page connects to ${wsUrl.href.replace(/\/$/, '')}. Ctrl-C stops.\n`,
      );
      io.stdout(`http://127.0.0.1:${port}/console#session=${session}\n`);
      const stopped =
        io.untilStopped?.() ??
        new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        });
      await stopped;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err instanceof UsageError) {
      io.stderr(`error: ${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof ApiError) {
      const { answer } = err;
      io.stderr(answer.body === undefined ? `HTTP ${answer.status}${answer.text ? `: ${answer.text}` : ''}\n` : `${JSON.stringify(answer.body)}\n`);
      return EXIT.failed;
    }
    io.stderr(`error: ${(err as Error).message}\n`);
    return EXIT.failed;
  }
}
