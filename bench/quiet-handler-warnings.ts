/**
 * The handlers' Powertools Metrics middleware warns "No application metrics to publish" on
 * every invocation that recorded no metric, which buries the bench's figures under thousands
 * of identical lines. The handlers run in this process, so drop exactly that line from stderr
 * (and count it); every other line passes through untouched.
 */
const NOISE = 'No application metrics to publish.';

export function quietHandlerWarnings(): { dropped: () => number } {
  let dropped = 0;
  const write = process.stderr.write.bind(process.stderr) as (...args: unknown[]) => boolean;
  process.stderr.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (typeof chunk === 'string' && chunk.startsWith(NOISE)) {
      dropped++;
      const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    }
    return write(chunk, ...rest);
  }) as typeof process.stderr.write;
  return { dropped: () => dropped };
}
