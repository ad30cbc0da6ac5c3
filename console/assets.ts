/**
 * The console's page: index.html, console.css and console.js (page/app.ts with the client
 * library). dist/cli/wxgate.js carries them built in (cli/build.mjs defines
 * WXGATE_CONSOLE_ASSETS), so the published command needs no esbuild; from the source (local mode,
 * tests, `npm run wxgate`) they are built by console/build.mjs with esbuild, once per process.
 */
export interface ConsoleAssets {
  html: string;
  js: string;
  css: string;
}

declare const WXGATE_CONSOLE_ASSETS: ConsoleAssets | undefined;

let built: Promise<ConsoleAssets> | undefined;

export function loadConsoleAssets(): Promise<ConsoleAssets> {
  if (typeof WXGATE_CONSOLE_ASSETS !== 'undefined') return Promise.resolve(WXGATE_CONSOLE_ASSETS);
  // A variable specifier: the CLI bundle must not pull the builder (and esbuild) in.
  const builder = './build.mjs';
  built ??= (import(builder) as Promise<typeof import('./build.mjs')>).then((m) => m.buildConsoleAssets());
  built.catch(() => (built = undefined));
  return built;
}
