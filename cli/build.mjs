/**
 * Builds what other projects use from this package (docs/admin-api.md, "Packaging"):
 *   dist/cli/wxgate.js        the `wxgate` command (package.json "bin")
 *   dist/cli/sign-request.js  `import { signRequest } from 'wxgate/sign'` (package.json "exports")
 *   dist/cli/sign-request.d.ts its types
 * `wxgate console` serves the web console's page, built by console/build.mjs and carried inside
 * wxgate.js (WXGATE_CONSOLE_ASSETS), so the command needs no esbuild where it is installed.
 * Plain ESM JavaScript for Node >= 20: no tsx needed to run them. Each entry is bundled with the
 * repository code it uses (admin-signing.ts); npm packages (commander) stay imports and are
 * dependencies. Runs on `npm install` / `npm ci` (the "prepare" script) and `npm run build:cli`.
 * Usage: node cli/build.mjs [outdir]   (default dist/cli)
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = resolve(process.argv[2] ?? join(root, 'dist', 'cli'));

// esbuild and typescript are dev dependencies: an install without them (--omit=dev) cannot build
// and does not need to; say so instead of failing the install.
let build, ts;
try {
  ({ build } = await import('esbuild'));
  ({ default: ts } = await import('typescript'));
} catch {
  console.warn('wxgate: dev dependencies (esbuild, typescript) are not installed; dist/cli not built');
  process.exit(0);
}

await mkdir(outdir, { recursive: true });
const { buildConsoleAssets } = await import('../console/build.mjs');
const consoleAssets = await buildConsoleAssets();
await build({
  absWorkingDir: root,
  entryPoints: ['cli/wxgate.ts', 'cli/sign-request.ts'],
  outdir,
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  define: { WXGATE_CONSOLE_ASSETS: JSON.stringify(consoleAssets) },
  logLevel: 'warning',
});
await chmod(join(outdir, 'wxgate.js'), 0o755);

// The declaration file, from the source alone (sign-request.ts keeps its exported types self-contained).
const source = await readFile(join(root, 'cli', 'sign-request.ts'), 'utf8');
const declaration = ts.transpileDeclaration(source, { fileName: 'sign-request.ts', reportDiagnostics: true, compilerOptions: { strict: true } });
if (declaration.diagnostics?.length) {
  const messages = declaration.diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  throw new Error(`sign-request.d.ts: ${messages.join('; ')}`);
}
await writeFile(join(outdir, 'sign-request.d.ts'), declaration.outputText);
console.log(`wxgate: built ${outdir}/{wxgate.js,sign-request.js,sign-request.d.ts}`);
