import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { HttpGateway } from '../../lib/constructs/http-gateway';
import type { FunctionId, HttpRouteDeclaration } from '../../lib/gateway-declaration';
import { functions } from '../../lib/gateway-declaration';
import { logicalIdOf, testApp } from './fixture';

// The declaration has no HTTP routes yet; this proves the loop wires any it gets.
describe('HttpGateway route wiring', () => {
  const stack = new Stack(testApp(), 'HttpOnly');
  const fns = {} as Record<FunctionId, lambda.IFunction>;
  for (const id of Object.keys(functions) as FunctionId[]) {
    fns[id] = new lambda.Function(stack, id, {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('export const handler = async () => ({})'),
    });
  }
  const routes: HttpRouteDeclaration[] = [
    { method: 'POST', path: '/v1/push', function: 'wsSend' },
    { method: 'GET', path: '/wechat/{accountId}', function: 'wsSync' },
  ];
  const gateway = new HttpGateway(stack, 'Http', { functions: fns, routes });
  const template = Template.fromStack(stack);

  test.each(routes.map((r) => [`${r.method} ${r.path}`, r] as const))('%s routes to its declared function', (key, route) => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', {
      RouteKey: key,
      ApiId: { Ref: logicalIdOf(gateway.api) },
      AuthorizationType: 'NONE',
    });
    const routeProps = Object.values(template.findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: key } }))[0]!
      .Properties;
    const integrationId = (routeProps.Target['Fn::Join'][1] as unknown[]).find((p) => typeof p === 'object') as { Ref: string };
    const integration = template.toJSON().Resources[integrationId.Ref].Properties;
    expect(integration).toMatchObject({ IntegrationType: 'AWS_PROXY', PayloadFormatVersion: '2.0' });
    expect(integration.IntegrationUri).toEqual({ 'Fn::GetAtt': [logicalIdOf(fns[route.function]), 'Arn'] });
    expect(gateway.routes[key]).toBeDefined();
  });

  test('only the declared routes exist', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Route', routes.length);
  });
});
