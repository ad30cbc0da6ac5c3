/**
 * Cold start section of `npm run bench` (docs/performance.md, "Cold start"): every declared
 * function is bundled exactly as the stack bundles it (lib/constructs/gateway-bundling.ts), then
 * each bundle is loaded in a fresh Node process `runs` times, round-robin with an empty module,
 * so that machine noise hits every function alike. A load is what a Lambda cold start does
 * before the first invocation: start Node, import the handler module (which imports the AWS SDK
 * clients it uses, as the runtime provides them), create what the module creates at import.
 * Nothing is invoked and nothing reaches AWS: the environment holds dummies.
 *
 * Reported per function: bundle and source map bytes, the median time from process start until
 * the handler is loaded ("ready"), the median of the import alone, the median CPU time the
 * process used until then, and ready and CPU as multiples of the empty module's in the same run
 * (the figures that travel between machines). On a machine shared with other work the wall
 * times swing with its load; the CPU time much less.
 *
 * `npm run bench -- --cold-start-only` runs this section alone (so does `npx tsx bench/cold-start.ts`);
 * `--no-cold-start` skips it.
 */
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import type { BundlingOptions } from 'aws-cdk-lib/aws-lambda-nodejs';
import { env, functions, queues, tables, type FunctionDeclaration, type FunctionId } from '../lib/gateway-declaration';
import { esbuildOptionsOf, GATEWAY_BUNDLING, GATEWAY_NODE_OPTIONS } from '../lib/constructs/gateway-bundling';
import { formatTable, machineInfo, type MachineInfo } from './report';
import { ratio, round } from './stats';

export const DEFAULT_COLD_START_RUNS = 7;
export const coldStartResultsFile = fileURLToPath(new URL('./results/cold-start-latest.json', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface ColdStartRow {
  /** A declared function id, or `(empty module)`. */
  name: string;
  bundleBytes: number;
  sourceMapBytes: number;
  /** Median ms from process start until the module is loaded. */
  readyMs: number;
  /** Median ms of the `import()` alone. */
  importMs: number;
  /** readyMs over the empty module's readyMs. */
  readyVsEmpty: number;
  /** Median CPU ms (user + system, all threads) the process used until the module was loaded. */
  cpuMs: number;
  /** cpuMs over the empty module's cpuMs. */
  cpuVsEmpty: number;
}

export interface ColdStartFigures {
  runs: number;
  /** Node flags the loads ran with (the functions' NODE_OPTIONS). */
  nodeOptions: string[];
  node: string;
  rows: ColdStartRow[];
}

export interface ColdStartOptions {
  runs?: number;
  /** The project to bundle (default: this repository). Bundles are written under its node_modules/.cache. */
  root?: string;
  bundling?: BundlingOptions;
  nodeOptions?: string[];
  step?: (line: string) => void;
}

/** A loader run in each fresh process: imports the bundle and prints its timings as JSON. */
const LOADER = `
const started = performance.now();
const mod = await import(process.argv[1]);
const loaded = performance.now();
const cpu = process.cpuUsage();
if (process.argv[2] === 'handler' && typeof mod.handler !== 'function') throw new Error('no handler export');
process.stdout.write(JSON.stringify({ importMs: loaded - started, readyMs: loaded, cpuMs: (cpu.user + cpu.system) / 1000 }));
`;

interface LoadSample {
  importMs: number;
  readyMs: number;
  cpuMs: number;
}

/** What a function finds in its environment in AWS, with dummy values: enough for its import. */
function dummyEnvironment(id: string): NodeJS.ProcessEnv {
  const vars: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_LAMBDA_FUNCTION_NAME: `wxgate-${id}`,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '512',
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    POWERTOOLS_SERVICE_NAME: 'wxgate',
    [env.managementEndpoint]: 'https://example.execute-api.us-east-1.amazonaws.com/live',
    [env.jwtSecretArn]: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt',
    [env.adminKeysArn]: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:admin',
    [env.wechatAccountsArn]: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:wechat',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  for (const [tableId, table] of Object.entries(tables)) vars[table.envVar] = `wxgate-${tableId}`;
  for (const [queueId, queue] of Object.entries(queues)) vars[queue.envVar] = `https://sqs.us-east-1.amazonaws.com/123456789012/wxgate-${queueId}`;
  return vars;
}

function loadOnce(file: string, id: string, nodeOptions: string[], expectHandler: boolean): Promise<LoadSample> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeOptions, '--input-type=module', '-e', LOADER, file, expectHandler ? 'handler' : 'any'], {
      env: dummyEnvironment(id),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`loading ${id} failed (exit ${code}): ${err.trim().slice(0, 2000)}`));
      try {
        resolve(JSON.parse(out) as LoadSample);
      } catch {
        reject(new Error(`loading ${id} printed no timings: ${out.slice(0, 500)} ${err.slice(0, 500)}`));
      }
    });
  });
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export const EMPTY_MODULE = '(empty module)';

export async function measureColdStarts(options: ColdStartOptions = {}): Promise<ColdStartFigures> {
  const runs = options.runs ?? DEFAULT_COLD_START_RUNS;
  const root = options.root ?? REPO_ROOT;
  const bundling = options.bundling ?? GATEWAY_BUNDLING;
  const nodeOptions = options.nodeOptions ?? GATEWAY_NODE_OPTIONS.split(/\s+/).filter(Boolean);
  const step = options.step ?? (() => {});
  // Inside the project, so that the external `@aws-sdk/*` imports resolve as the runtime's would.
  const outRoot = join(root, 'node_modules', '.cache', 'wxgate-cold-start');
  await rm(outRoot, { recursive: true, force: true });

  const targets: Array<{ name: string; file: string; bundleBytes: number; sourceMapBytes: number; handler: boolean }> = [];
  const emptyFile = join(outRoot, 'empty', 'index.mjs');
  await mkdir(join(outRoot, 'empty'), { recursive: true });
  await writeFile(emptyFile, 'export {};\n');
  targets.push({ name: EMPTY_MODULE, file: emptyFile, bundleBytes: 11, sourceMapBytes: 0, handler: false });

  step(`bundling ${Object.keys(functions).length} functions as the stack does...`);
  for (const [id, declaration] of Object.entries(functions) as Array<[FunctionId, FunctionDeclaration]>) {
    const outdir = join(outRoot, id);
    const result = await esbuild.build({ ...esbuildOptionsOf(declaration.entry, root, outdir, bundling), write: true });
    const outputs = Object.entries(result.metafile.outputs);
    const js = outputs.find(([file]) => file.endsWith('.mjs'));
    const map = outputs.find(([file]) => file.endsWith('.mjs.map'));
    targets.push({ name: id, file: join(outdir, 'index.mjs'), bundleBytes: js?.[1].bytes ?? 0, sourceMapBytes: map?.[1].bytes ?? 0, handler: true });
  }

  const samples = new Map<string, LoadSample[]>(targets.map((t) => [t.name, []]));
  // One unmeasured load of each first: the file system cache is then warm for every target alike.
  for (const target of targets) await loadOnce(target.file, target.name, nodeOptions, target.handler);
  for (let run = 1; run <= runs; run++) {
    step(`cold start: load ${run} of ${runs} of ${targets.length} modules`);
    for (const target of targets) samples.get(target.name)!.push(await loadOnce(target.file, target.name, nodeOptions, target.handler));
  }
  await rm(outRoot, { recursive: true, force: true });

  const medianOf = (name: string, pick: (s: LoadSample) => number) => median(samples.get(name)!.map(pick));
  const emptyReady = medianOf(EMPTY_MODULE, (s) => s.readyMs);
  const emptyCpu = medianOf(EMPTY_MODULE, (s) => s.cpuMs);
  const rows = targets.map((target): ColdStartRow => {
    const readyMs = medianOf(target.name, (s) => s.readyMs);
    const cpuMs = medianOf(target.name, (s) => s.cpuMs);
    return {
      name: target.name,
      bundleBytes: target.bundleBytes,
      sourceMapBytes: target.sourceMapBytes,
      readyMs: round(readyMs, 1),
      importMs: round(medianOf(target.name, (s) => s.importMs), 1),
      readyVsEmpty: ratio(readyMs, emptyReady),
      cpuMs: round(cpuMs, 1),
      cpuVsEmpty: ratio(cpuMs, emptyCpu),
    };
  });
  return { runs, nodeOptions, node: process.version, rows };
}

const kb = (bytes: number) => (bytes / 1000).toFixed(1);

export function formatColdStarts(figures: ColdStartFigures): string {
  const header = ['module', 'bundle kB', 'map kB', 'ready ms (p50)', 'import ms (p50)', 'ready / empty', 'CPU ms (p50)', 'CPU / empty'];
  const rows = figures.rows.map((r) => [
    r.name,
    kb(r.bundleBytes),
    kb(r.sourceMapBytes),
    r.readyMs.toFixed(1),
    r.importMs.toFixed(1),
    r.readyVsEmpty.toFixed(2),
    r.cpuMs.toFixed(1),
    r.cpuVsEmpty.toFixed(2),
  ]);
  const flags = figures.nodeOptions.length ? figures.nodeOptions.join(' ') : 'none';
  return [
    `Cold start: each bundle loaded in a fresh Node ${figures.node} process ${figures.runs} times (node flags: ${flags}); ready = process start to handler loaded`,
    formatTable(header, rows),
  ].join('\n');
}

export interface ColdStartFlags {
  only: boolean;
  skip: boolean;
  /** The arguments without the cold-start flags. */
  rest: string[];
}

/** `--cold-start-only` and `--no-cold-start`, taken out of the bench's arguments. */
export function coldStartFlags(argv: string[]): ColdStartFlags {
  return {
    only: argv.includes('--cold-start-only'),
    skip: argv.includes('--no-cold-start'),
    rest: argv.filter((arg) => arg !== '--cold-start-only' && arg !== '--no-cold-start'),
  };
}

export const COLD_START_USAGE = [
  `  ${'--cold-start-only'.padEnd(24)} only the cold start section (bundle each function as the stack does, load it ${DEFAULT_COLD_START_RUNS} times)`,
  `  ${'--no-cold-start'.padEnd(24)} skip the cold start section (it runs first by default, about 30 s)`,
].join('\n');

/** Measures, prints and writes bench/results/cold-start-latest.json. Returns the figures. */
export async function runColdStartSection(log: (line: string) => void, step: (line: string) => void): Promise<ColdStartFigures & { machine: MachineInfo }> {
  const machine = machineInfo();
  const figures = { ...(await measureColdStarts({ step })), machine };
  await mkdir(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
  await writeFile(coldStartResultsFile, `${JSON.stringify({ measuredAt: new Date().toISOString(), ...figures }, null, 2)}\n`);
  log(`${formatColdStarts(figures)}\n(written to ${coldStartResultsFile})\n`);
  return figures;
}

// `npx tsx bench/cold-start.ts`: this section alone.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runColdStartSection(
    (line) => console.log(line),
    (line) => console.error(`[cold-start] ${line}`),
  ).then(
    () => process.exit(0),
    (err: Error) => {
      console.error(err.stack ?? err.message);
      process.exit(2);
    },
  );
}
