import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { App, Stack } from 'aws-cdk-lib';
import { functions, type FunctionDeclaration, type FunctionId } from '../../lib/gateway-declaration';
import { BUNDLE_BUDGET_BYTES, esbuildOptionsOf } from '../../lib/constructs/gateway-bundling';
import { GatewayFunction, REPO_ROOT } from '../../lib/constructs/gateway-function';

/**
 * Every declared function's bundle stays within BUNDLE_BUDGET_BYTES (150 KB minified), built
 * with exactly the stack's esbuild settings (lib/constructs/gateway-bundling.ts). A failure names
 * the function and the three largest inputs of its bundle (npm packages, or project files), so
 * the cause is in the message. The last test builds one function through CDK's own bundling and
 * checks the output is the same byte for byte: the settings here are the stack's.
 */

const kB = (bytes: number) => `${(bytes / 1000).toFixed(1)} kB`;

interface Built {
  id: FunctionId;
  bytes: number;
  js: Uint8Array;
  /** Bytes in the output per input, grouped: an npm package (`zod`, `@aws-lambda-powertools/logger`) or a project file. */
  inputs: Array<[string, number]>;
}

const packageOf = (input: string): string => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)?.[1] ?? input;

async function build(id: FunctionId): Promise<Built> {
  const entry = (functions[id] as FunctionDeclaration).entry;
  const result = await esbuild.build({ ...esbuildOptionsOf(entry, REPO_ROOT, join(tmpdir(), 'wxgate-bundle-size', id)), write: false });
  const [, output] = Object.entries(result.metafile.outputs).find(([file]) => file.endsWith('index.mjs'))!;
  const grouped = new Map<string, number>();
  for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) grouped.set(packageOf(input), (grouped.get(packageOf(input)) ?? 0) + bytesInOutput);
  return {
    id,
    bytes: output.bytes,
    js: result.outputFiles.find((file) => file.path.endsWith('index.mjs'))!.contents,
    inputs: [...grouped].sort((a, b) => b[1] - a[1]),
  };
}

/** The failure message when `bundle` is over `budget`, naming it and its three largest inputs. */
function overBudget({ id, bytes, inputs }: Built, budget: number): string | undefined {
  if (bytes <= budget) return undefined;
  const biggest = inputs.slice(0, 3).map(([input, size]) => `${input} ${kB(size)}`).join(', ');
  return `${id} is ${kB(bytes)}, over its budget of ${kB(budget)}; its three largest inputs: ${biggest}`;
}

const ids = Object.keys(functions) as FunctionId[];
const built = new Map<FunctionId, Built>();

beforeAll(async () => {
  // One at a time: the machine has two cores and other suites run beside this one.
  for (const id of ids) built.set(id, await build(id));
}, 120_000);

describe('bundle size', () => {
  it.each(ids)(`%s is at most ${kB(BUNDLE_BUDGET_BYTES)} minified`, (id) => {
    const problem = overBudget(built.get(id)!, BUNDLE_BUDGET_BYTES);
    if (problem) throw new Error(problem);
  });

  it('functions that validate no frames or requests bundle no zod, and none bundles the X-Ray SDK or JMESPath', () => {
    const has = (id: FunctionId, pkg: string) => built.get(id)!.inputs.some(([input, size]) => input === pkg && size > 0);
    for (const id of ['wsAuthorizer', 'wsConnect', 'wsDisconnect', 'wsDefault', 'fanoutWorker', 'presenceCounter', 'wechatCallback'] as const) {
      expect([id, has(id, 'zod')]).toEqual([id, false]);
    }
    for (const id of ids) {
      for (const pkg of ['aws-xray-sdk-core', '@aws-lambda-powertools/tracer', '@aws-lambda-powertools/jmespath', 'fast-xml-parser']) {
        if (pkg === 'fast-xml-parser' && id === 'wechatCallback') continue; // it parses WeChat's XML
        expect([id, pkg, has(id, pkg)]).toEqual([id, pkg, false]);
      }
    }
  });

  it('names the function and its three largest inputs when one is over budget', () => {
    const problem = overBudget(built.get('adminApi')!, 10_000);
    expect(problem).toMatch(/^adminApi is \d+\.\d kB, over its budget of 10\.0 kB; its three largest inputs: \S+ \d+\.\d kB, \S+ \d+\.\d kB, \S+ \d+\.\d kB$/);
    expect(problem).toContain('@aws-lambda-powertools/logger');
  });

  it("builds what CDK's own bundling builds, byte for byte", () => {
    // wsDefault: the smallest function; CDK runs esbuild itself (local bundling) while synthesizing.
    const outdir = mkdtempSync(join(tmpdir(), 'wxgate-cdk-bundle-'));
    try {
      const app = new App({ outdir });
      new GatewayFunction(new Stack(app, 'BundleCheck'), 'Fn', { entry: functions.wsDefault.entry, description: 'bundle check' });
      app.synth();
      const assets = readdirSync(outdir).filter((name) => name.startsWith('asset.') && statSync(join(outdir, name)).isDirectory());
      expect(assets).toHaveLength(1);
      const cdkOutput = readFileSync(join(outdir, assets[0]!, 'index.mjs'));
      expect(Buffer.compare(cdkOutput, Buffer.from(built.get('wsDefault')!.js))).toBe(0);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  }, 60_000);
});
