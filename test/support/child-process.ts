import { execFile } from 'node:child_process';

/** What a child process left: exit code (-1 when killed or not started), stdout, stderr. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment a developer's shell would have: no jest NODE_OPTIONS, no stray WXGATE_* settings. */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (name !== 'NODE_OPTIONS' && !name.startsWith('WXGATE_')) env[name] = value;
  return { ...env, ...extra };
}

/** Runs a program as a user would, to completion (or `timeoutMs`); never rejects. */
export function runChild(command: string, args: string[], options: { env?: Record<string, string>; cwd: string; timeoutMs: number }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: options.cwd, env: childEnv(options.env ?? {}), timeout: options.timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}
