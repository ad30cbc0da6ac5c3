/**
 * Builds `wxgate/client` (docs/client.md): dist/client/index.js, one minified ESM bundle with no
 * imports (browsers and Node), and dist/client/index.d.ts, its types. Runs on `npm install` /
 * `npm ci` (the "prepare" script, after cli/build.mjs) and `npm run build:client`;
 * test/unit/client/bundle-size.test.ts runs it too, to measure what is published.
 * Usage: node client/build.mjs [outdir] [--max-gzip=BYTES]   (default dist/client; with
 * --max-gzip, exits 1 when the gzipped bundle is not smaller: `npm run size:client`)
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const outdir = resolve(args.find((a) => !a.startsWith('--')) ?? join(root, 'dist', 'client'));
const maxGzip = Number(args.find((a) => a.startsWith('--max-gzip='))?.slice('--max-gzip='.length) ?? Infinity);

// esbuild and typescript are dev dependencies: an install without them (--omit=dev) cannot build
// and does not need to; say so instead of failing the install.
let build, ts;
try {
  ({ build } = await import('esbuild'));
  ({ default: ts } = await import('typescript'));
} catch {
  console.warn('wxgate: dev dependencies (esbuild, typescript) are not installed; dist/client not built');
  process.exit(0);
}

await mkdir(outdir, { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: ['client/index.ts'],
  outfile: join(outdir, 'index.js'),
  bundle: true,
  platform: 'neutral',
  format: 'esm',
  // Browsers of 2020 on (Chrome/Edge 80, Firefox 74, Safari 13.1) and any Node ≥ 14.
  target: 'es2020',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});

// The declaration file, from the entry alone (index.ts keeps every exported type in itself).
const source = await readFile(join(root, 'client', 'index.ts'), 'utf8');
const declaration = ts.transpileDeclaration(source, { fileName: 'index.ts', reportDiagnostics: true, compilerOptions: { strict: true } });
if (declaration.diagnostics?.length) {
  const messages = declaration.diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  throw new Error(`client/index.d.ts: ${messages.join('; ')}`);
}
await writeFile(join(outdir, 'index.d.ts'), declaration.outputText);
const bundle = await readFile(join(outdir, 'index.js'));
const gzipped = gzipSync(bundle, { level: 9 }).length;
console.log(`wxgate: built ${outdir}/{index.js,index.d.ts} (${bundle.length} bytes, ${gzipped} gzipped)`);
if (gzipped >= maxGzip) {
  console.error(`wxgate: the client bundle is ${gzipped} bytes gzipped, the limit is under ${maxGzip}`);
  process.exit(1);
}
