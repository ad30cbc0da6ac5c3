import { readdirSync, readFileSync } from 'node:fs';
import { functions, tables, type FunctionDeclaration, type TableId } from '../../lib/gateway-declaration';

/**
 * A net under the per-function grants (gateway-stack.test.ts asserts them exactly): the DynamoDB
 * calls the adapters' source makes, per table, against the union of what the declaration grants
 * on that table. A command added to an adapter that no function may call fails here, before it
 * fails in production (local mode does not enforce IAM); a grant no adapter uses fails too.
 * Which function needs it is still a reviewer's call: the grants are per function.
 */
const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

/** Adapter class -> table, from the wiring (`new DynamoX(dynamoDocumentClient(), tableName('t'))`). */
function adapterTables(): Map<string, TableId> {
  const wiring = readdirSync(new URL('lambdas/runtime/', root))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => read(`lambdas/runtime/${f}`))
    .join('\n');
  const map = new Map<string, TableId>();
  for (const m of wiring.matchAll(/new (Dynamo\w+)\(dynamoDocumentClient\(\), tableName\('(\w+)'\)/g)) map.set(m[1]!, m[2] as TableId);
  return map;
}

/** The DynamoDB actions an adapter module's source sends (commands, the paging helpers, transaction items). */
function actionsIn(source: string): Set<string> {
  const actions = new Set<string>();
  const indexes = [...source.matchAll(/IndexName: '(\w+)'/g)].map((m) => m[1]!);
  const query = () => (indexes.length > 0 ? indexes.forEach((i) => actions.add(`Query:${i}`)) : actions.add('Query'));
  const commands: Record<string, () => void> = {
    GetCommand: () => actions.add('GetItem'),
    PutCommand: () => actions.add('PutItem'),
    UpdateCommand: () => actions.add('UpdateItem'),
    DeleteCommand: () => actions.add('DeleteItem'),
    ScanCommand: () => actions.add('Scan'),
    QueryCommand: query,
    BatchGetCommand: () => actions.add('BatchGetItem'),
    BatchWriteCommand: () => actions.add('BatchWriteItem'),
  };
  for (const [command, add] of Object.entries(commands)) if (new RegExp(`new ${command}\\(`).test(source)) add();
  if (/\bqueryAll\s*[<(]/.test(source)) query();
  if (/\bbatchWriteAll\(/.test(source)) actions.add('BatchWriteItem');
  if (/new TransactWriteCommand\(/.test(source)) {
    const items: Record<string, string> = { Put: 'PutItem', Update: 'UpdateItem', Delete: 'DeleteItem', ConditionCheck: 'ConditionCheckItem' };
    for (const [item, action] of Object.entries(items)) if (new RegExp(`\\{ ${item}: \\{`).test(source)) actions.add(action);
  }
  return actions;
}

/** Adapter methods that no handler reaches (so their command is granted to nobody), and why. */
const UNREACHED: Partial<Record<TableId, Record<string, string>>> = {
  connections: { GetItem: 'DynamoConnectionRegistry.get: part of the ConnectionRegistry port, called by no handler since pings stopped reading the row' },
};

const tableIds = Object.keys(tables) as TableId[];

describe('the declared DynamoDB grants cover the adapters, and nothing more', () => {
  const owners = adapterTables();
  const used = new Map<TableId, Set<string>>(tableIds.map((t) => [t, new Set()]));
  for (const file of readdirSync(new URL('lambdas/adapters/', root)).filter((f) => /^dynamo-.*\.ts$/.test(f))) {
    const source = read(`lambdas/adapters/${file}`);
    const classes = [...source.matchAll(/export class (Dynamo\w+)/g)].map((m) => m[1]!);
    for (const cls of classes) {
      const table = owners.get(cls);
      if (table) for (const action of actionsIn(source)) used.get(table)!.add(action);
    }
  }
  const granted = new Map<TableId, Set<string>>(tableIds.map((t) => [t, new Set()]));
  for (const decl of Object.values(functions) as FunctionDeclaration[]) {
    for (const [t, actions] of Object.entries(decl.tables ?? {}) as Array<[TableId, readonly string[]]>) for (const a of actions) granted.get(t)!.add(a);
  }

  test('every adapter is wired to a table', () => {
    expect([...owners.keys()].sort()).toEqual([
      'DynamoAdminStore',
      'DynamoConnectionRegistry',
      'DynamoGroupDirectory',
      'DynamoMessageStore',
      'DynamoOutboundStore',
      'DynamoPresenceStore',
      'DynamoSendRateStore',
      'DynamoWechatTokenStore',
    ]);
  });

  test.each(tableIds)('%s: every action an adapter sends is granted to some function (or is listed as unreached)', (t) => {
    const missing = [...used.get(t)!].filter((a) => !granted.get(t)!.has(a) && !UNREACHED[t]?.[a]);
    expect(missing).toEqual([]);
  });

  test.each(tableIds)('%s: every granted action is one an adapter sends', (t) => {
    expect([...granted.get(t)!].filter((a) => !used.get(t)!.has(a))).toEqual([]);
  });

  test('the unreached list is still true (each entry is used by an adapter and granted to nobody)', () => {
    for (const [t, entries] of Object.entries(UNREACHED) as Array<[TableId, Record<string, string>]>) {
      for (const action of Object.keys(entries)) {
        expect({ t, action, used: used.get(t)!.has(action), granted: granted.get(t)!.has(action) }).toEqual({ t, action, used: true, granted: false });
      }
    }
  });

  test('what the scan found, per table', () => {
    const found = Object.fromEntries(tableIds.map((t) => [t, [...used.get(t)!].sort()]));
    expect(found).toEqual({
      connections: ['DeleteItem', 'GetItem', 'PutItem', 'Query:byUser', 'Scan'],
      messages: ['BatchWriteItem', 'GetItem', 'PutItem', 'Query', 'UpdateItem'],
      groups: ['BatchWriteItem', 'GetItem', 'Query'],
      admin: ['BatchGetItem', 'ConditionCheckItem', 'DeleteItem', 'GetItem', 'PutItem', 'UpdateItem'],
      wechat: ['GetItem', 'PutItem', 'UpdateItem'],
    });
  });
});

