import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { startDynamoEngine, type DynamoEngine } from '../../local/dynamodb-engine';
import { checkJava, JavaMissingError } from '../../local/java-check';

/**
 * DynamoDB Local listens on 127.0.0.1 only (local/java/LoopbackDynamoDbLocal.java).
 * Checked without sending anything to a non-loopback address: the kernel's own socket tables
 * (/proc/net/tcp, /proc/net/tcp6) say which address the listening socket is bound to.
 */
const onLinux = existsSync('/proc/net/tcp');

interface ListeningSocket {
  table: 'tcp' | 'tcp6';
  address: string; // kernel hex, e.g. 0100007F (127.0.0.1) or 00000000 (every interface)
  inode: string;
}

/** Every listening TCP socket on `port`, from /proc/net/tcp and /proc/net/tcp6. */
function listeningSockets(port: number): ListeningSocket[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const found: ListeningSocket[] = [];
  for (const table of ['tcp', 'tcp6'] as const) {
    const file = `/proc/net/${table}`;
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      const [address, localPort] = fields[1].split(':');
      const state = fields[3];
      if (localPort === hexPort && state === '0A' /* LISTEN */) found.push({ table, address, inode: fields[9] });
    }
  }
  return found;
}

/** 127.0.0.1 as tcp shows it, and as tcp6 shows it for a dual-stack socket (::ffff:127.0.0.1). */
const LOOPBACK = { tcp: '0100007F', tcp6: '0000000000000000FFFF00000100007F' };

/** Socket inodes held open by a process. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]);
    } catch {
      /* fd closed meanwhile */
    }
  }
  return inodes;
}

function processGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

(onLinux ? describe : describe.skip)('DynamoDB Local engine (Linux /proc/net)', () => {
  let engine: DynamoEngine | undefined;
  const logLines: string[] = [];

  beforeAll(async () => {
    engine = await startDynamoEngine({ logger: (line) => logLines.push(line) });
  }, 60_000);

  afterAll(async () => {
    await engine?.stop();
  }, 30_000);

  test('listens on 127.0.0.1 only, not on every interface', () => {
    const port = Number(new URL(engine!.endpoint).port);
    const sockets = listeningSockets(port);
    expect(sockets.length).toBeGreaterThan(0);
    for (const socket of sockets) expect(socket.address).toBe(LOOPBACK[socket.table]);
    // Not a coincidence of ports: the listening socket is the Java process's own.
    const javaSockets = socketInodes(engine!.pid!);
    expect(sockets.every((socket) => javaSockets.has(socket.inode))).toBe(true);
  });

  test('answers on loopback with the declared tables, in memory and shared', async () => {
    const { TableNames = [] } = await engine!.client.send(new ListTablesCommand({}));
    expect(TableNames.sort()).toEqual(Object.values(engine!.tableNames).sort());
    expect(logLines.some((line) => line.startsWith(`DynamoDB Local (pid ${engine!.pid}) on http://127.0.0.1:`))).toBe(true);
  });

  test('stop() ends the whole process group and frees the port', async () => {
    const port = Number(new URL(engine!.endpoint).port);
    const pid = engine!.pid!;
    await engine!.stop();
    engine = undefined;
    expect(processGroupAlive(pid)).toBe(false);
    expect(listeningSockets(port)).toEqual([]);
  }, 30_000);
});

describe('Java check', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wxgate-java-check-'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('accepts this machine\'s JDK', async () => {
    await expect(checkJava()).resolves.toBeGreaterThanOrEqual(17);
  });

  (process.platform === 'win32' ? test.skip : test)('reports a Java runtime without jdk.compiler (a JRE) as missing the JDK, with how to get it', async () => {
    const fakeJava = join(dir, 'java');
    writeFileSync(
      fakeJava,
      [
        '#!/bin/sh',
        'case "$1" in',
        '  -version) echo \'openjdk version "17.0.15" 2025-04-15\' >&2 ;;',
        '  --list-modules) printf "java.base@17.0.15\\njava.compiler@17.0.15\\njdk.jfr@17.0.15\\n" ;;',
        '  *) exit 1 ;;',
        'esac',
        '',
      ].join('\n'),
    );
    chmodSync(fakeJava, 0o755);
    const failure = checkJava(fakeJava);
    await expect(failure).rejects.toBeInstanceOf(JavaMissingError);
    await expect(failure).rejects.toThrow(/found Java 17, but a runtime without the jdk\.compiler module/);
    await expect(failure).rejects.toThrow(/apt-get install openjdk-17-jdk-headless/);
  });

  test('reports a missing java command', async () => {
    await expect(checkJava(join(dir, 'no-such-java'))).rejects.toBeInstanceOf(JavaMissingError);
  });
});
