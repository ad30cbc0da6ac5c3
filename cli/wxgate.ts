#!/usr/bin/env node
/**
 * `wxgate`: the admin API from the command line (docs/admin-api.md, "The wxgate CLI").
 * Run from the repository with `npx wxgate …` (the built dist/cli/wxgate.js) or
 * `npm run -s wxgate -- …` (this file through tsx).
 */
import { main } from './program';

process.exitCode = await main(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
});
