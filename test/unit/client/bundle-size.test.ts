/**
 * wxgate/client stays small: builds it with the published build (client/build.mjs: esbuild,
 * minified ESM) into a temporary directory and gzips it. docs/client.md states the size.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const LIMIT = 6 * 1024;

it('the published bundle is under 6 KB minified and gzipped, imports nothing, and types come with it', () => {
  const out = mkdtempSync(join(tmpdir(), 'wxgate-client-'));
  try {
    execFileSync(process.execPath, ['client/build.mjs', out], { cwd: process.cwd(), stdio: 'pipe' });
    const bundle = readFileSync(join(out, 'index.js'));
    const gzipped = gzipSync(bundle, { level: 9 }).length;
    console.log(`wxgate/client: ${bundle.length} bytes minified, ${gzipped} bytes gzipped (limit ${LIMIT})`);
    expect(gzipped).toBeLessThan(LIMIT);
    const text = bundle.toString('utf8');
    expect(text).not.toMatch(/\bimport\s*[\w{*]|\brequire\(/);
    expect(text).toMatch(/export\s*\{/);
    const types = readFileSync(join(out, 'index.d.ts'), 'utf8');
    expect(types).toContain('export declare class WxgateClient');
    expect(types).not.toMatch(/^import /m);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
