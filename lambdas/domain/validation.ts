import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

/**
 * The one validation library of the Lambda code: `zod/mini`, the tree-shakable build of zod v4.
 * A bundle takes only the schema types and checks it uses, not the whole library and its 40
 * locales (the full `zod` build was 440 KB of every bundle). Schemas are written
 * `z.string().check(z.minLength(1))` instead of `z.string().min(1)`; the parsing, the issues and
 * their messages are zod's own.
 *
 * Modules import `* as z from './validation'`, never `zod/mini` itself: this file names exactly
 * what the schemas use (a namespace object re-exported whole would keep all of zod).
 */

let englishMessages = false;

/**
 * A schema built at its first use, not at import: declare it as
 * `const s = /* @__PURE__ *\/ lazySchema(() => z.object(...))` and parse with `z.parse(s(), value)`.
 * Nothing runs when a module is loaded, and a bundle whose handler never parses with it drops
 * it, and zod with it (a module that builds schemas at its top level stays in every bundle that
 * imports anything from it).
 *
 * The first schema built registers zod's English messages: `zod/mini` loads no locale, so its
 * issues would read just "Invalid input"; with `en` they read exactly as the full build wrote
 * them ("Invalid input: expected string, received number", "Too big: expected string to have <=64 characters").
 */
export function lazySchema<T>(build: () => T): () => T {
  let built: T | undefined;
  return () => {
    if (built === undefined) {
      if (!englishMessages) {
        config(en());
        englishMessages = true;
      }
      built = build();
    }
    return built;
  };
}

export {
  array,
  enum,
  gt,
  gte,
  int,
  length,
  literal,
  lte,
  maxLength,
  minLength,
  number,
  object,
  optional,
  parse,
  refine,
  regex,
  safeParse,
  strictObject,
  string,
  union,
  unknown,
} from 'zod/mini';
export type { infer } from 'zod/mini';
