import { createServer, type Server } from 'node:net';

/** Thrown when a port the user chose is taken; names the environment variable to change. */
export class PortInUseError extends Error {
  constructor(
    readonly port: number,
    readonly envVar: string,
  ) {
    super(`Port ${port} is already in use. Stop whatever listens there, or pick another port with ${envVar}=<port>.`);
    this.name = 'PortInUseError';
  }
}

/** A currently free loopback port, for the engines (DynamoDB Local needs a number up front). */
export async function freeLoopbackPort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('could not allocate a free port');
  return address.port;
}

/** `server.listen` as a promise; EADDRINUSE becomes a {@link PortInUseError}. Resolves with the bound port. */
export async function listen(server: Server | import('node:http').Server, port: number, host: string, envVar: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(err.code === 'EADDRINUSE' ? new PortInUseError(port, envVar) : err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('server has no TCP address');
  return address.port;
}

/** Fails fast with {@link PortInUseError} before the slow engines start (port 0 is always fine). */
export async function ensurePortFree(port: number, host: string, envVar: string): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  await listen(probe, port, host, envVar);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
