/** Types of build.mjs (the console's page, built in memory). */
export declare function buildConsoleAssets(): Promise<{ html: string; js: string; css: string }>;
