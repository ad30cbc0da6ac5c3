/** Names, region and credentials that local mode uses for every emulated AWS resource. */
export const LOCAL_REGION = 'us-east-1';
export const LOCAL_ACCOUNT_ID = '000000000000';
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

/** `connections` -> `wxgate-local-connections`. */
export const localResourceName = (id: string): string => `wxgate-local-${id}`;
