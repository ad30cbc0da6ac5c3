import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { jwtSecretSource, ConfigError } from './config';

/** The client-token secret, cached for 5 minutes so rotation takes effect without a redeploy. */
export async function loadJwtSecret(): Promise<string> {
  const source = jwtSecretSource();
  if (source.kind === 'value') return source.value;
  const value = await getSecret<string>(source.arn, { maxAge: 300 });
  if (typeof value !== 'string' || value.length < 32) throw new ConfigError('the client-token secret is missing or shorter than 32 characters');
  return value;
}
