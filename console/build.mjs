/**
 * Builds the web console's page (docs/console.md) in memory: console/page/app.ts bundled with
 * the client library (client/index.ts) by esbuild into one minified ES2020 module, next to
 * page/index.html and page/console.css. Used three ways, one build definition:
 *   - local mode (`npm start`, tests) builds it on the first request to /console (console/assets.ts);
 *   - cli/build.mjs embeds the result in dist/cli/wxgate.js, so `wxgate console` needs no esbuild;
 *   - `node console/build.mjs [outdir]` writes the three files (default dist/console), to look at.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** @returns {Promise<{ html: string; js: string; css: string }>} */
export async function buildConsoleAssets() {
  const { build } = await import('esbuild');
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['console/page/app.ts'],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'esm',
    target: 'es2020',
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const [html, css] = await Promise.all(['index.html', 'console.css'].map((name) => readFile(join(root, 'console', 'page', name), 'utf8')));
  return { html, js: result.outputFiles[0].text, css };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outdir = resolve(process.argv[2] ?? join(root, 'dist', 'console'));
  const assets = await buildConsoleAssets();
  await mkdir(outdir, { recursive: true });
  await Promise.all([
    writeFile(join(outdir, 'index.html'), assets.html),
    writeFile(join(outdir, 'console.js'), assets.js),
    writeFile(join(outdir, 'console.css'), assets.css),
  ]);
  console.log(`wxgate: built ${outdir}/{index.html,console.js,console.css} (script ${assets.js.length} bytes)`);
}
