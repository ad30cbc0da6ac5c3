import {
  ApiGatewayManagementApiClient,
  ApiGatewayManagementApiServiceException,
  ForbiddenException,
  GoneException,
  LimitExceededException,
  PayloadTooLargeException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { mockClient } from 'aws-sdk-client-mock';
import { ManagementApiSender, outcomeOfError } from '../../../lambdas/adapters/management-api-sender';

const api = mockClient(ApiGatewayManagementApiClient);
const sender = () => new ManagementApiSender(new ApiGatewayManagementApiClient({ region: 'us-east-1', endpoint: 'https://example.execute-api.us-east-1.amazonaws.com/prod' }));

const meta = (httpStatusCode: number) => ({ httpStatusCode });
/** What the SDK throws for an answer without a known error type. */
const bare = (status: number) =>
  new ApiGatewayManagementApiServiceException({ name: 'Unknown', $fault: status >= 500 ? 'server' : 'client', $metadata: meta(status), message: 'UnknownError' });

beforeEach(() => api.reset());

describe('outcomeOfError', () => {
  it.each([
    ['GoneException', new GoneException({ message: 'gone', $metadata: meta(410) }), 'gone'],
    ['a bare 410', bare(410), 'gone'],
    ['LimitExceededException', new LimitExceededException({ message: 'slow down', $metadata: meta(429) }), 'retryable'],
    ['a bare 429', bare(429), 'retryable'],
    ['a bare 500', bare(500), 'retryable'],
    ['a bare 503', bare(503), 'retryable'],
    ['PayloadTooLargeException', new PayloadTooLargeException({ message: 'too big', $metadata: meta(413) }), 'rejected'],
    ['ForbiddenException', new ForbiddenException({ message: 'no', $metadata: meta(403) }), 'rejected'],
    ['a bare 413', bare(413), 'rejected'],
    ['a bare 403', bare(403), 'rejected'],
  ] as const)('maps %s to %s', (_what, err, outcome) => {
    expect(outcomeOfError(err)).toBe(outcome);
  });

  it('retries a network failure without an HTTP answer', () => {
    expect(outcomeOfError(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }))).toBe('retryable');
    expect(outcomeOfError(new Error('read ECONNRESET'))).toBe('retryable');
  });
});

describe('ManagementApiSender', () => {
  it('posts the payload as UTF-8 bytes and answers ok', async () => {
    api.on(PostToConnectionCommand).resolves({});
    const payload = JSON.stringify({ type: 'message', body: { text: 'héllo 你好 👋' } });

    await expect(sender().post('conn-1', payload)).resolves.toBe('ok');

    const input = api.commandCalls(PostToConnectionCommand)[0]!.args[0].input;
    expect(input.ConnectionId).toBe('conn-1');
    expect(input.Data).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(input.Data as Uint8Array).equals(Buffer.from(payload, 'utf8'))).toBe(true);
  });

  it.each([
    [new GoneException({ message: 'gone', $metadata: meta(410) }), 'gone'],
    [bare(410), 'gone'],
    [bare(429), 'retryable'],
    [new LimitExceededException({ message: 'slow down', $metadata: meta(429) }), 'retryable'],
    [bare(500), 'retryable'],
    [bare(413), 'rejected'],
    [bare(403), 'rejected'],
  ] as const)('turns a failed post into an outcome (%#) instead of throwing', async (err, outcome) => {
    api.on(PostToConnectionCommand).rejects(err);
    await expect(sender().post('conn-1', '{}')).resolves.toBe(outcome);
  });
});
