import { randomUUID } from 'node:crypto';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Context } from 'aws-lambda';
import { functions, type FunctionDeclaration, type FunctionId } from '../lib/gateway-declaration';
import { LOCAL_ACCOUNT_ID, LOCAL_REGION, localResourceName } from './local-names';

/** The repository root (this file lives in `<root>/local/`). Declaration entries are relative to it. */
export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');

/**
 * Test seam: run another module instead of a declared function's entry (path relative to the
 * repository root, or absolute). Integration tests use it to run fixture consumers; `npm start`
 * never sets it.
 */
export type FunctionOverrides = Partial<Record<FunctionId, string>>;

type Handler = (event: unknown, context: Context) => unknown;

/** Thrown when an invocation runs longer than the function's declared timeout (Lambda's message). */
export class InvocationTimeoutError extends Error {
  constructor(seconds: number) {
    super(`Task timed out after ${seconds.toFixed(2)} seconds`);
    this.name = 'InvocationTimeoutError';
  }
}

/**
 * Runs the handlers in this process, as Lambda would: the module is imported once (cold
 * start) and reused, each call gets a fresh `Context`, and a call that outlives the declared
 * timeout fails with Lambda's "Task timed out" error (the promise is abandoned, not killed).
 * process.env must be complete before the first invoke: handler modules may read it at import.
 */
export class LambdaInvoker {
  private readonly modules = new Map<FunctionId, Promise<Handler>>();
  private running = 0;
  /**
   * Called after every invocation with the handler's own wall-clock time (the first call's module
   * import, Lambda's cold start, is not included) and whether it failed. The cost meter uses it.
   */
  onInvocation?: (id: FunctionId, durationMs: number, failed: boolean) => void;

  constructor(private readonly overrides: FunctionOverrides = {}) {}

  /** Invocations currently running, across all functions. */
  get inFlight(): number {
    return this.running;
  }

  modulePath(id: FunctionId): string {
    const entry = this.overrides[id] ?? (functions[id] as FunctionDeclaration).entry;
    return isAbsolute(entry) ? entry : join(repoRoot, entry);
  }

  private load(id: FunctionId): Promise<Handler> {
    let loaded = this.modules.get(id);
    if (!loaded) {
      const path = this.modulePath(id);
      loaded = import(pathToFileURL(path).href).then((mod: { handler?: unknown }) => {
        if (typeof mod.handler !== 'function') throw new Error(`${path} does not export a function named handler`);
        return mod.handler as Handler;
      });
      loaded.catch(() => this.modules.delete(id)); // let a fixed file load on the next call
      this.modules.set(id, loaded);
    }
    return loaded;
  }

  async invoke<R = unknown>(id: FunctionId, event: unknown): Promise<R> {
    const declaration = functions[id] as FunctionDeclaration;
    this.running++;
    try {
      const handler = await this.load(id);
      const timeoutMs = declaration.timeoutSeconds * 1000;
      const deadline = Date.now() + timeoutMs;
      const functionName = localResourceName(id);
      const context: Context = {
        callbackWaitsForEmptyEventLoop: true,
        functionName,
        functionVersion: '$LATEST',
        invokedFunctionArn: `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT_ID}:function:${functionName}`,
        memoryLimitInMB: String(declaration.memoryMb),
        awsRequestId: randomUUID(),
        logGroupName: `/aws/lambda/${functionName}`,
        logStreamName: `local/[$LATEST]${randomUUID().replaceAll('-', '')}`,
        getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
        done: () => undefined,
        fail: () => undefined,
        succeed: () => undefined,
      };
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new InvocationTimeoutError(declaration.timeoutSeconds)), timeoutMs);
      });
      const startedAt = performance.now();
      let failed = true;
      try {
        const result = (await Promise.race([Promise.resolve().then(() => handler(event, context)), timeout])) as R;
        failed = false;
        return result;
      } finally {
        clearTimeout(timer);
        this.onInvocation?.(id, performance.now() - startedAt, failed);
      }
    } finally {
      this.running--;
    }
  }
}
