// zod/mini throws zod's core error class (the full build's ZodError is a subclass of it).
import { $ZodError as ZodError } from 'zod/v4/core';
import { parseQueuedMessage } from '../../../lambdas/domain/queued-message';

const valid = {
  msgId: '01JD0000000000000000000000',
  from: 'u1',
  fromDevice: 'phone',
  fromConnection: 'conn-1',
  to: { user: 'u2' },
  body: { text: 'hi' },
  ts: 1_732_250_000_000,
};

describe('parseQueuedMessage', () => {
  it('parses a valid message', () => {
    expect(parseQueuedMessage(JSON.stringify(valid))).toEqual(valid);
  });

  it('throws on invalid JSON', () => {
    expect(() => parseQueuedMessage('{not json')).toThrow(SyntaxError);
  });

  it.each(['msgId', 'from', 'fromDevice', 'fromConnection', 'to', 'ts'])('throws when %s is missing', (field) => {
    const { [field as keyof typeof valid]: _dropped, ...rest } = valid;
    expect(() => parseQueuedMessage(JSON.stringify(rest))).toThrow(ZodError);
  });

  it('throws on a malformed recipient or timestamp', () => {
    expect(() => parseQueuedMessage(JSON.stringify({ ...valid, to: { user: 'u 2' } }))).toThrow(ZodError);
    expect(() => parseQueuedMessage(JSON.stringify({ ...valid, ts: -1 }))).toThrow(ZodError);
    expect(() => parseQueuedMessage(JSON.stringify({ ...valid, msgId: 'short' }))).toThrow(ZodError);
  });
});
