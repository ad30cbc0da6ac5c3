#!/usr/bin/env node
/**
 * `wxgate`: the admin API from the command line (docs/admin-api.md, "The wxgate CLI").
 * Run from the repository with `npx wxgate …` (the built dist/cli/wxgate.js) or
 * `npm run -s wxgate -- …` (this file through tsx).
 */
import { main } from './program';

// `wxgate … | head`: a reader that went away is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await main(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
});
