import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/**
 * Headless Chromium for the console's browser tests: Debian's `chromium` (or WXGATE_CHROMIUM),
 * driven by playwright-core, which never downloads a browser of its own. Flags from
 * shared/notes/TOOLCHAIN.md ("Headless Chromium"): no sandbox (CI runs as root), and no
 * background networking, which would keep trying hosts a closed network refuses. Each launch gets
 * a fresh --user-data-dir, removed on close.
 */
export const CHROMIUM = process.env.WXGATE_CHROMIUM || '/usr/bin/chromium';

/** Screenshots and other artefacts of the browser tests (git-ignored). */
export const TEST_OUTPUT = fileURLToPath(new URL('../../test-output/console/', import.meta.url));

const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export interface Browser {
  context: BrowserContext;
  /** Page errors and console errors of every page opened with `open`. */
  problems: string[];
  open(url: string): Promise<Page>;
  close(): Promise<void>;
}

/** Throws with how to install Chromium when it is missing: a browser test must not pass without a browser. */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}; the console's browser tests need it. ` +
        'Install it with `apt-get update && apt-get install -y chromium` (Debian/Ubuntu; .ci/run does this), ' +
        'or point WXGATE_CHROMIUM at a Chromium or Chrome binary.',
    );
  }
}

export async function launchChromium(): Promise<Browser> {
  requireChromium();
  mkdirSync(TEST_OUTPUT, { recursive: true });
  const userDataDir = mkdtempSync(join(tmpdir(), 'wxgate-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 1280, height: 800 },
      timeout: 60_000,
    });
  } catch (err) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw err;
  }
  const problems: string[] = [];
  return {
    context,
    problems,
    async open(url) {
      const page = await context.newPage();
      page.on('pageerror', (err) => problems.push(`page error on ${page.url()}: ${err.message}`));
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console error on ${page.url()}: ${message.text()}`);
      });
      await page.goto(url);
      return page;
    },
    async close() {
      await context.close().catch(() => undefined);
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
