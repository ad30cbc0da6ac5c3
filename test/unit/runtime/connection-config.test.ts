import { env } from '../../../lib/gateway-declaration';
import { ConfigError, connectionRowLifetimeSeconds, maxConnectionsPerUser } from '../../../lambdas/runtime/config';

/** The connection settings read at `$connect`: the row lifetime and the per-user connection limit. */
const names = [env.connectionRowLifetimeSeconds, env.maxConnectionsPerUser];
const saved = Object.fromEntries(names.map((name) => [name, process.env[name]]));

afterEach(() => {
  for (const name of names) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
});

describe('connection settings', () => {
  it('by default a row lives 2 h 10 min and a user may hold 10 connections', () => {
    for (const name of names) delete process.env[name];
    expect(connectionRowLifetimeSeconds()).toBe(7800);
    expect(maxConnectionsPerUser()).toBe(10);
  });

  it('both come from their declared variables', () => {
    process.env[env.connectionRowLifetimeSeconds] = '10800';
    process.env[env.maxConnectionsPerUser] = '3';
    expect(connectionRowLifetimeSeconds()).toBe(10800);
    expect(maxConnectionsPerUser()).toBe(3);
  });

  it('a row lifetime shorter than API Gateway\'s 2-hour limit is refused: nothing would refresh the row', () => {
    process.env[env.connectionRowLifetimeSeconds] = '900';
    expect(() => connectionRowLifetimeSeconds()).toThrow(ConfigError);
    expect(() => connectionRowLifetimeSeconds()).toThrow(/at least 7200/);
    process.env[env.connectionRowLifetimeSeconds] = '7200';
    expect(connectionRowLifetimeSeconds()).toBe(7200);
  });

  it.each(['0', '-1', '2.5', 'ten'])('MAX_CONNECTIONS_PER_USER=%s is refused with a ConfigError', (value) => {
    process.env[env.maxConnectionsPerUser] = value;
    expect(() => maxConnectionsPerUser()).toThrow(ConfigError);
  });
});
