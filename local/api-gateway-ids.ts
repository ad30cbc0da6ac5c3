import { randomBytes } from 'node:crypto';

/** API Gateway style ids: 11 random bytes in base64: 16 characters ending in `=`, like `L0SM9cOFvHcCIhw=`. */
export const apiGatewayId = (): string => randomBytes(11).toString('base64');

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `requestTime` as API Gateway writes it: `09/Apr/2015:12:34:56 +0000`. */
export function apiGatewayTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/** `::ffff:127.0.0.1` -> `127.0.0.1`. */
export const sourceIpOf = (address: string | undefined): string => (address ?? '127.0.0.1').replace(/^::ffff:/, '');
