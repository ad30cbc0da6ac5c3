import { CfnResource, Lazy, Stack } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';

/**
 * Drops the DependsOn a Lambda function has on its own execution role (cfn-lint W3005,
 * "dependency already enforced by a GetAtt"): the function's `Role` property is a GetAtt of that
 * role, which orders them already. CDK adds the dependency on the role construct, which also
 * holds the role's default policy; that dependency stays, since nothing else makes
 * CloudFormation create the policy (the table, queue and log grants) before the function, and
 * every other DependsOn the function has stays too. The list is computed at synthesis, after
 * CDK has turned construct dependencies into resource dependencies.
 */
export function dropRoleDependsOn(fn: lambda.Function): void {
  const cfnFunction = fn.node.defaultChild as CfnResource;
  const cfnRole = fn.role?.node.defaultChild;
  if (!(cfnRole instanceof CfnResource)) return;
  cfnFunction.addOverride(
    'DependsOn',
    Lazy.list(
      {
        produce: () =>
          cfnFunction
            .obtainDependencies()
            .filter((d): d is CfnResource => d instanceof CfnResource && d !== cfnRole && Stack.of(d) === Stack.of(cfnFunction))
            .sort((a, b) => a.node.path.localeCompare(b.node.path))
            .map((d) => d.logicalId),
      },
      { omitEmpty: true },
    ),
  );
}
