import { GatewayError, toClientError } from '../../../lambdas/domain/errors';

describe('toClientError', () => {
  it('turns a plain Error into internal with a fixed message that leaks nothing', () => {
    const err = new Error('DynamoDB said: table wxgate-secret-table not found');
    const out = toClientError(err);
    expect(out.code).toBe('internal');
    expect(out.message).not.toContain('wxgate-secret-table');
    expect(out.message).not.toContain(err.message);
    expect(out.message).not.toContain(err.stack!.split('\n')[1]!.trim());
    expect(out.message).not.toMatch(/\bat /);
    // Fixed: the same for any other failure.
    expect(toClientError(new TypeError('x is undefined')).message).toBe(out.message);
    expect(toClientError('a string').code).toBe('internal');
  });

  it('keeps the code and message of a GatewayError', () => {
    expect(toClientError(new GatewayError('forbidden', 'not a member'))).toEqual({ code: 'forbidden', message: 'not a member' });
  });
});
