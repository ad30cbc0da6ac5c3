/**
 * Admin API keys: several may be active at once (rotation: add a key, move backends, remove the
 * old one). Local mode reads `keyId:secret,keyId2:secret2` (WXGATE_ADMIN_KEYS); AWS reads a
 * Secrets Manager secret holding JSON `{"keyId":"secret",...}`. Errors name the key, never a secret.
 */
export type AdminKeys = ReadonlyMap<string, string>;

const KEY_ID = /^[A-Za-z0-9_.-]{1,64}$/;
export const MIN_SECRET_LENGTH = 16;

export class AdminKeysError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdminKeysError';
  }
}

function checked(entries: Array<[string, unknown]>, source: string): AdminKeys {
  const keys = new Map<string, string>();
  for (const [keyId, secret] of entries) {
    if (!KEY_ID.test(keyId)) throw new AdminKeysError(`${source}: key id "${keyId.slice(0, 64)}" must be 1-64 characters of [A-Za-z0-9_.-]`);
    if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) {
      throw new AdminKeysError(`${source}: the secret of key "${keyId}" must be a string of at least ${MIN_SECRET_LENGTH} characters`);
    }
    if (keys.has(keyId)) throw new AdminKeysError(`${source}: key "${keyId}" appears twice`);
    keys.set(keyId, secret);
  }
  if (keys.size === 0) throw new AdminKeysError(`${source}: no admin key is configured`);
  return keys;
}

/** `keyId:secret,keyId2:secret2` (a secret may itself contain ':'). */
export function parseAdminKeyList(value: string, source = 'WXGATE_ADMIN_KEYS'): AdminKeys {
  const entries = value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part): [string, unknown] => {
      const at = part.indexOf(':');
      if (at <= 0) throw new AdminKeysError(`${source}: each entry must be keyId:secret`);
      return [part.slice(0, at), part.slice(at + 1)];
    });
  return checked(entries, source);
}

/** `{"keyId":"secret",...}` as stored in Secrets Manager. */
export function parseAdminKeyJson(value: string, source = 'the admin keys secret'): AdminKeys {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new AdminKeysError(`${source} is not JSON; expected {"keyId":"secret",...}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new AdminKeysError(`${source}: expected a JSON object {"keyId":"secret",...}`);
  return checked(Object.entries(parsed), source);
}
