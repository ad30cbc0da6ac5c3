import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { tables as declaredTables, type KeyDeclaration, type TableDeclaration, type TableId } from '../gateway-declaration';
import { constructIdOf, entriesOf } from './declaration-helpers';

export interface GatewayTablesProps {
  /**
   * The tables to create, keyed by table id.
   * @default the `tables` of `lib/gateway-declaration.ts`
   */
  readonly tables?: Record<TableId, TableDeclaration>;
  /**
   * What happens to the tables (and their data) when they leave the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * DynamoDB deletion protection. `false` turns it off on every table (a throwaway stack with
   * `RemovalPolicy.DESTROY`, whose deletion it would otherwise block).
   * @default - as each table declares (`deletionProtection`)
   */
  readonly deletionProtection?: boolean;
}

const attribute = (key: KeyDeclaration): dynamodb.Attribute => ({
  name: key.name,
  type: key.type === 'S' ? dynamodb.AttributeType.STRING : dynamodb.AttributeType.NUMBER,
});

/**
 * Every DynamoDB table of the declaration: on demand, encrypted at rest (AWS managed key), TTL,
 * global secondary indexes (their declared projection, else ALL), deletion protection and
 * point-in-time recovery as declared.
 */
export class GatewayTables extends Construct {
  /** The tables, keyed by declared table id. */
  public readonly tables: Record<TableId, dynamodb.Table>;

  constructor(scope: Construct, id: string, props: GatewayTablesProps = {}) {
    super(scope, id);
    const declarations: Record<TableId, TableDeclaration> = props.tables ?? declaredTables;
    const created: Partial<Record<TableId, dynamodb.Table>> = {};

    for (const [tableId, decl] of entriesOf<TableId, TableDeclaration>(declarations)) {
      const table = new dynamodb.Table(this, constructIdOf(tableId), {
        partitionKey: attribute(decl.partitionKey),
        sortKey: decl.sortKey ? attribute(decl.sortKey) : undefined,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: decl.pointInTimeRecovery },
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        timeToLiveAttribute: decl.ttlAttribute,
        removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
        deletionProtection: props.deletionProtection === false ? false : decl.deletionProtection,
        ...(decl.stream ? { stream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES } : {}),
      });
      for (const index of decl.indexes) {
        table.addGlobalSecondaryIndex({
          indexName: index.indexName,
          partitionKey: attribute(index.partitionKey),
          sortKey: index.sortKey ? attribute(index.sortKey) : undefined,
          ...(index.projection
            ? { projectionType: dynamodb.ProjectionType.INCLUDE, nonKeyAttributes: [...index.projection] }
            : { projectionType: dynamodb.ProjectionType.ALL }),
        });
      }
      if (!decl.pointInTimeRecovery) {
        Validations.of(table).acknowledge({
          id: 'AwsSolutions-DDB3',
          reason:
            `Point-in-time recovery is off on purpose for the ${tableId} table (lib/gateway-declaration.ts says why): ` +
            'its rows expire within hours or days or are rebuilt by the system itself, so a restored older copy ' +
            'would be stale state, not lost data, and backups would be billed for nothing.',
        });
      }
      created[tableId] = table;
    }
    this.tables = created as Record<TableId, dynamodb.Table>;
  }
}
