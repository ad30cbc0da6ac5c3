import * as path from 'node:path';
import type { BuildOptions } from 'esbuild';
import { OutputFormat, type BundlingOptions } from 'aws-cdk-lib/aws-lambda-nodejs';

/**
 * How every wxgate function is bundled, in one place: GatewayFunction hands it to
 * NodejsFunction, and the bundle-size test (test/infra/bundle-size.test.ts) and the cold-start
 * bench (bench/cold-start.ts) build with `esbuildOptionsOf`, its translation into esbuild's own
 * options. The test also builds one function through CDK itself and checks the output is the same
 * byte for byte, so the two cannot drift.
 */

/** Makes `require` available inside the ESM bundle (for CommonJS dependencies that call it). */
export const ESM_REQUIRE_BANNER = "import { createRequire } from 'module';const require = createRequire(import.meta.url);";

/**
 * The largest minified bundle (`index.mjs`) any function may have, in bytes: 150 KB. A cold start
 * loads and compiles all of it before the first request is answered (docs/performance.md, "Cold start").
 */
export const BUNDLE_BUDGET_BYTES = 150_000;

/**
 * NodejsFunction's bundling options, every one stated.
 *
 * - `externalModules`: the AWS SDK v3 (`@aws-sdk/*`) comes from the Lambda runtime, as it does
 *   by default for Node.js 18+ runtimes (stated here so the test and the bench see the same list;
 *   `@smithy/*` is bundled, as CDK does without the `sdkV3ExcludeSmithyPackages` feature flag).
 * - `sourceMap` with `sourcesContent: false`: a map of names and positions only, without a copy
 *   of every source file (which made the maps 2.5-3 MB before the bundles shrank, and still 0.2-1.1 MB
 *   after). With `--enable-source-maps` (GATEWAY_NODE_OPTIONS) Node reads and parses the map in
 *   every cold start: measured, a 1 MB map cost 10-20 ms a load, one of 50-190 KB costs nothing
 *   measurable, and stack traces in the logs keep pointing at the TypeScript sources
 *   (docs/performance.md, "Cold start").
 */
export const GATEWAY_BUNDLING: BundlingOptions = {
  forceDockerBundling: false,
  minify: true,
  sourceMap: true,
  sourcesContent: false,
  target: 'node22',
  format: OutputFormat.ESM,
  mainFields: ['module', 'main'],
  banner: ESM_REQUIRE_BANNER,
  externalModules: ['@aws-sdk/*'],
};

/** The `NODE_OPTIONS` every function runs with (see `GATEWAY_BUNDLING` on source maps). */
export const GATEWAY_NODE_OPTIONS = '--enable-source-maps';

/** Bundling options `esbuildOptionsOf` translates; anything else set in GATEWAY_BUNDLING is refused. */
const TRANSLATED = new Set(['forceDockerBundling', 'minify', 'sourceMap', 'sourcesContent', 'target', 'format', 'mainFields', 'banner', 'externalModules']);

/**
 * The esbuild build that NodejsFunction runs locally for `entry` (relative to `projectRoot`),
 * writing `index.mjs` (and its map) into `outdir`: the same flags as CDK's
 * `esbuild --bundle <entry> --target --platform=node --format --outfile --minify --sourcemap
 * --sources-content --external --banner:js --main-fields`, run from the project root. Adds a
 * metafile, which changes nothing in the output.
 */
export function esbuildOptionsOf(entry: string, projectRoot: string, outdir: string, bundling: BundlingOptions = GATEWAY_BUNDLING): BuildOptions & { metafile: true } {
  const unknown = Object.entries(bundling).filter(([key, value]) => value !== undefined && !TRANSLATED.has(key));
  if (unknown.length > 0) throw new Error(`esbuildOptionsOf does not translate the bundling option(s) ${unknown.map(([key]) => key).join(', ')}; add them`);
  if (bundling.format !== OutputFormat.ESM) throw new Error('wxgate bundles are ESM (index.mjs)');
  return {
    entryPoints: [path.resolve(projectRoot, entry)],
    absWorkingDir: projectRoot,
    bundle: true,
    platform: 'node',
    target: bundling.target,
    format: 'esm',
    outfile: path.join(outdir, 'index.mjs'),
    minify: bundling.minify ?? false,
    sourcemap: bundling.sourceMap ? true : undefined,
    sourcesContent: bundling.sourcesContent ?? true,
    external: [...(bundling.externalModules ?? [])],
    banner: bundling.banner ? { js: bundling.banner } : undefined,
    mainFields: bundling.mainFields ? [...bundling.mainFields] : undefined,
    metafile: true,
    logLevel: 'warning',
  };
}
