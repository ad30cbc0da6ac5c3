/**
 * `npm run cost` (docs/cost.md): measures the cost units of every operation on the local runtime
 * with its cost meter, prints the table and the monthly bills of the named workloads, and writes
 * bench/results/cost-units.json (gitignored).
 *
 *   npm run cost                       # everything, 3 measured runs of each operation: ~3-5 min on 2 cores
 *   npm run cost -- --repeats 1        # one run each: ~2 min
 *   npm run cost -- --big-inbox 0      # without the limit=500 sync (filling its 500 x 32 KiB inbox takes ~30 s)
 *   npm run cost -- --from bench/results/cost-units.json   # bills again from a saved run, nothing measured
 *   npm run cost -- --update-docs      # also write the tables and bills into docs/cost.md
 *   npm run cost -- --verbose          # the local runtime's log on stderr
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { parseWechatAccounts } from '../lambdas/domain/wechat-accounts';
import { registerAccounts, startFakeWechatApi } from '../local/fake-wechat-api';
import { startLocalGateway } from '../local/local-gateway';
import { readFileSync } from 'node:fs';
import { adminKeysOption, newBenchAdminKey } from './admin';
import { measureOperations, type OperationUnits } from './cost-operations';
import { ANCHORS, billsFor, formatBills, formatDetailTable, formatSummary, formatUnitsTable, perConnectionBroadcast, PRICES, replaceSection, WORKLOADS } from './cost-model';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const WECHAT_ACCOUNTS_FILE = join(root, 'examples', 'wechat', 'accounts.json');
export const WECHAT_ACCOUNT_ID = 'wxlocaldemo0000001';

const program = new Command()
  .name('npm run cost --')
  .description('Measures the cost units per operation on the local runtime (docs/cost.md).')
  .option('--big-inbox <n>', 'messages of 32 KiB in the inbox of the limit=500 sync (0 skips it)', '500')
  .option('--repeats <n>', 'measured runs per operation (units must be equal in all; durations: the median run)', '3')
  .option('--out <file>', 'where to write the JSON', join(root, 'bench', 'results', 'cost-units.json'))
  .option('--from <file>', 'no measuring: print the tables and bills from a saved cost-units.json')
  .option('--update-docs', 'also write the tables and bills into docs/cost.md (between its <!-- …:start/end --> markers)', false)
  .option('--verbose', "print the local runtime's log to stderr", false)
  .parse();
const opts = program.opts<{ bigInbox: string; repeats: string; out: string; from?: string; updateDocs: boolean; verbose: boolean }>();

function gitDescribe(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} (with uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}

const startedAt = Date.now();

/** Measures every operation on a fresh local runtime (with the fake WeChat API), then stops it. */
async function measure(): Promise<OperationUnits[]> {
  const jwtSecret = randomBytes(24).toString('hex');
  const adminKey = newBenchAdminKey();
  // 'open': custom/send accepts any user (the 48-hour reply window is not what is measured here).
  const fake = await startFakeWechatApi({ recipients: 'open' });
  registerAccounts(fake, parseWechatAccounts(readFileSync(WECHAT_ACCOUNTS_FILE, 'utf8'), WECHAT_ACCOUNTS_FILE));
  const gateway = await startLocalGateway({
    httpPort: 0,
    wsPort: 0,
    jwtSecret,
    adminKeys: adminKeysOption(adminKey),
    costMeter: true,
    // Nothing expires during a run; a sweep would only add stream records to a window.
    sweepIntervalMs: 24 * 3600_000,
    handlerEnv: { WXGATE_WECHAT_ACCOUNTS: WECHAT_ACCOUNTS_FILE, WXGATE_WECHAT_API_BASE: fake.url, WXGATE_WECOM_API_BASE: fake.url },
    logger: opts.verbose ? (line) => process.stderr.write(`${line}\n`) : () => undefined,
  }).catch(async (err: unknown) => {
    await fake.close();
    throw err;
  });
  const stop = async () => {
    await gateway.stop();
    await fake.close();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void stop().then(() => process.exit(130));
    });
  }
  try {
    return await measureOperations({
      gateway,
      jwtSecret,
      adminKey,
      wechat: { accountsFile: WECHAT_ACCOUNTS_FILE, accountId: WECHAT_ACCOUNT_ID },
      wechatReply: true,
      bigInboxMessages: Number(opts.bigInbox),
      broadcastSizes: [10, 100, 1000],
      repeats: Number(opts.repeats),
      log: (line) => process.stderr.write(`  ${line}\n`),
    });
  } finally {
    await stop();
  }
}

let failed = false;
try {
  // --from: the bills again from a saved measurement (new prices or workloads), nothing measured.
  const saved = opts.from ? (JSON.parse(readFileSync(opts.from, 'utf8')) as { operations: OperationUnits[]; measuredAt: string; commit: string; machine: string; durationS: number }) : undefined;
  const operations: OperationUnits[] = saved ? saved.operations : await measure();
  const perConnection = perConnectionBroadcast(operations);
  const bills = billsFor(operations);
  const result = {
    measuredAt: saved?.measuredAt ?? new Date(startedAt).toISOString(),
    commit: saved?.commit ?? gitDescribe(),
    machine: saved?.machine ?? `${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}`,
    durationS: saved?.durationS ?? Math.round((Date.now() - startedAt) / 100) / 10,
    operations,
    broadcastPerConnection: perConnection,
    prices: PRICES,
    anchors: ANCHORS,
    workloads: WORKLOADS,
    bills,
  };
  console.log(`\nCost units per operation (local runtime, ${result.commit}, ${result.measuredAt.slice(0, 10)}; ${result.machine})\n`);
  console.log(formatUnitsTable(operations, perConnection));
  console.log('\nWhere the units go (read/write units; SQS requests by action; invocations)\n');
  console.log(formatDetailTable(operations));
  console.log('\nMonthly bills (docs/cost.md: prices, assumptions)\n');
  console.log(formatBills(bills));
  console.log(formatSummary(bills));
  if (opts.updateDocs) {
    const file = join(root, 'docs', 'cost.md');
    let doc = readFileSync(file, 'utf8');
    const title = `Measured ${result.measuredAt.slice(0, 10)} on ${result.commit} (${result.machine}):\n\n`;
    doc = replaceSection(doc, 'units', title + formatUnitsTable(operations, perConnection));
    doc = replaceSection(doc, 'detail', formatDetailTable(operations));
    doc = replaceSection(doc, 'bills', formatBills(bills, true));
    doc = replaceSection(doc, 'summary', formatSummary(bills));
    writeFileSync(file, doc);
    console.log(`\nupdated: ${file}`);
  }
  if (!saved) {
    mkdirSync(dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nwritten: ${opts.out} (${result.durationS} s)`);
  }
} catch (err) {
  failed = true;
  console.error(`npm run cost failed: ${(err as Error).stack ?? String(err)}`);
}
process.exit(failed ? 1 : 0);
