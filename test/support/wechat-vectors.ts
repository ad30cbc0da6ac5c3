import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** A published WeChat crypto sample (test/fixtures/README.md says where each comes from). */
export interface WechatVector {
  id: string;
  src: string;
  token: string;
  aesKey: string;
  receiveId: string;
  timestamp: string;
  nonce: string;
  msgSignature: string;
  encrypt: string;
  plain: string;
}

export const wechatVectors: WechatVector[] = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/wechat-vectors.json', import.meta.url)), 'utf8'));
