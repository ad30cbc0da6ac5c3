import { GatewayError } from '../../../lambdas/domain/errors';
import { MAX_BODY_BYTES, MAX_FRAME_DEPTH, frameIdOf, nestingDepthExceeds, parseClientFrame } from '../../../lambdas/domain/frames';

const json = (value: unknown) => JSON.stringify(value);

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return (err as GatewayError).code;
  }
  throw new Error('no error thrown');
}

describe('parseClientFrame', () => {
  it('parses a send to a user', () => {
    const frame = parseClientFrame('send', json({ action: 'send', id: 'c1', to: { user: 'u2' }, body: { text: 'hi' } }));
    expect(frame).toEqual({ action: 'send', id: 'c1', to: { user: 'u2' }, body: { text: 'hi' } });
  });

  it('parses a send to a group, with a falsy but present body', () => {
    expect(parseClientFrame('send', json({ action: 'send', to: { group: 'g1' }, body: 0 }))).toEqual({ action: 'send', to: { group: 'g1' }, body: 0 });
    expect(parseClientFrame('send', json({ action: 'send', to: { group: 'g1' }, body: null })).body).toBeNull();
  });

  it('parses sync with and without after/limit', () => {
    expect(parseClientFrame('sync', json({ action: 'sync', id: 's1', after: '01JD0000000000000000000000', limit: 500 }))).toEqual({
      action: 'sync',
      id: 's1',
      after: '01JD0000000000000000000000',
      limit: 500,
    });
    expect(parseClientFrame('sync', json({ action: 'sync' }))).toEqual({ action: 'sync' });
  });

  it('parses ping', () => {
    expect(parseClientFrame('ping', json({ action: 'ping', id: 'p1' }))).toEqual({ action: 'ping', id: 'p1' });
  });

  it.each([
    ['non-JSON', 'not json {'],
    ['an array', '[1,2]'],
    ['a JSON string', '"send"'],
    ['null', 'null'],
    ['empty', ''],
  ])('refuses %s with bad_request', (_what, raw) => {
    expect(codeOf(() => parseClientFrame('send', raw))).toBe('bad_request');
  });

  it.each([
    ['missing to', { action: 'send', body: 1 }],
    ['to with two keys', { action: 'send', to: { user: 'u2', group: 'g1' }, body: 1 }],
    ['to with an unknown key', { action: 'send', to: { channel: 'c' }, body: 1 }],
    ['a user id outside the charset', { action: 'send', to: { user: 'u 2' }, body: 1 }],
    ['a user id with a slash', { action: 'send', to: { user: 'u/2' }, body: 1 }],
    ['missing body', { action: 'send', to: { user: 'u2' } }],
    ['a numeric id', { action: 'send', id: 7, to: { user: 'u2' }, body: 1 }],
  ])('refuses a send with %s', (_what, frame) => {
    expect(codeOf(() => parseClientFrame('send', json(frame)))).toBe('bad_request');
  });

  it('names the bad field in the message', () => {
    expect(() => parseClientFrame('send', json({ action: 'send', to: { user: 'u2' } }))).toThrow(/body/);
  });

  it.each([[0], [501], [2.5], ['10']])('refuses sync limit %p', (limit) => {
    expect(codeOf(() => parseClientFrame('sync', json({ action: 'sync', limit })))).toBe('bad_request');
  });

  it('refuses a frame whose action is not the route action', () => {
    expect(codeOf(() => parseClientFrame('ping', json({ action: 'sync' })))).toBe('bad_request');
  });

  it('accepts a body of exactly 32 KiB once serialized and refuses one byte more as too_large', () => {
    const exact = 'x'.repeat(MAX_BODY_BYTES - 2); // the two quotes make it 32768 bytes
    expect(Buffer.byteLength(JSON.stringify(exact))).toBe(32768);
    expect(parseClientFrame('send', json({ action: 'send', to: { user: 'u2' }, body: exact })).body).toBe(exact);

    const over = 'x'.repeat(MAX_BODY_BYTES - 1);
    expect(codeOf(() => parseClientFrame('send', json({ action: 'send', to: { user: 'u2' }, body: over })))).toBe('too_large');
  });

  it('counts the body size in UTF-8 bytes, not characters', () => {
    const body = 'é'.repeat(16_384); // 16384 characters, 32768 bytes + 2 quotes
    expect(codeOf(() => parseClientFrame('send', json({ action: 'send', to: { user: 'u2' }, body })))).toBe('too_large');
  });
});

describe('frameIdOf', () => {
  it('echoes a string id', () => {
    expect(frameIdOf(json({ action: 'x', id: 'c1' }))).toBe('c1');
  });

  it.each([
    ['a numeric id', json({ id: 5 })],
    ['an object id', json({ id: { a: 1 } })],
    ['no id', json({ action: 'ping' })],
    ['an id over 128 characters', json({ id: 'x'.repeat(129) })],
    ['non-JSON', 'nope'],
    ['null', 'null'],
    ['undefined', undefined],
  ])('gives undefined for %s', (_what, raw) => {
    expect(frameIdOf(raw)).toBeUndefined();
  });
});

describe('nesting depth', () => {
  const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
  it('measures arrays and objects, and ignores brackets inside strings and escapes', () => {
    expect(nestingDepthExceeds(nested(3), 3)).toBe(false);
    expect(nestingDepthExceeds(nested(4), 3)).toBe(true);
    expect(nestingDepthExceeds('{"a":{"b":[1]}}', 3)).toBe(false);
    expect(nestingDepthExceeds('{"a":{"b":[[1]]}}', 3)).toBe(true);
    expect(nestingDepthExceeds(JSON.stringify({ s: '[[[[[[{{{{\\"[[[' }), 1)).toBe(false);
  });

  it('answers bad_request for a frame deeper than the limit, even 5,000 levels (no stack overflow)', () => {
    const frameAt = (bodyDepth: number) => `{"action":"send","id":"d","to":{"user":"u2"},"body":${nested(bodyDepth)}}`;
    expect(parseClientFrame('send', frameAt(MAX_FRAME_DEPTH - 1)).body).toBeDefined();
    for (const depth of [MAX_FRAME_DEPTH, 5_000]) {
      expect(() => parseClientFrame('send', frameAt(depth))).toThrow(expect.objectContaining({ code: 'bad_request', message: expect.stringContaining('nests deeper than 64') }));
    }
    expect(frameIdOf(frameAt(5_000))).toBeUndefined();
  });
});
