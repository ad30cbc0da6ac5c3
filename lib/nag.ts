import { Stack, Validations, type App } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/**
 * Runs the cdk-nag AwsSolutions pack on every synthesis of `app` (cdk-nag v3: a CDK policy
 * validation plugin; violations fail `cdk synth` and land in the cloud assembly's
 * validation report). Returns the pack so tests can call `pack.validateScope(app)`.
 */
export function applyNagChecks(app: App): AwsSolutionsChecks {
  const pack = new AwsSolutionsChecks(app, { verbose: true });
  Validations.of(app).addPlugins(pack);
  return pack;
}

/**
 * The string cdk-nag uses for a resource in finding ids such as `AwsSolutions-IAM5[Resource::...]`:
 * `Ref` becomes `<LogicalId>`, `Fn::GetAtt` becomes `<LogicalId.Attr>`, `Fn::Join` is joined.
 * Lets an acknowledgement name exactly one wildcard resource instead of the whole rule.
 */
export function nagResourceString(scope: IConstruct, value: unknown): string {
  const visit = (node: unknown): string => {
    if (node === undefined) return '';
    if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/\}/g, '>');
    if (typeof node === 'object' && node !== null) {
      const n = node as Record<string, unknown>;
      if (n['Fn::Join']) {
        const [delimiter, items] = n['Fn::Join'] as [string, unknown[]];
        return items.map(visit).join(delimiter);
      }
      if (n['Fn::Sub']) return visit(n['Fn::Sub']);
      if (n['Fn::GetAtt']) {
        const [resource, attribute] = n['Fn::GetAtt'] as [unknown, unknown];
        return `<${visit(resource)}.${visit(attribute)}>`;
      }
      if (n['Fn::ImportValue']) return visit(n['Fn::ImportValue']);
      if (n.Ref) return `<${visit(n.Ref)}>`;
    }
    return JSON.stringify(node);
  };
  return visit(Stack.of(scope).resolve(value));
}
