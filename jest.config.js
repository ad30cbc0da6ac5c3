/**
 * One jest run, three projects. Everything is ESM (middy is ESM-only), so ts-jest runs in
 * ESM mode and the run needs NODE_OPTIONS=--experimental-vm-modules (set by `npm test`).
 * @type {import('jest').Config}
 */
const esm = {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }] },
};

export default {
  projects: [
    { ...esm, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...esm, displayName: 'infra', testMatch: ['<rootDir>/test/infra/**/*.test.ts'] },
    // Integration suites start the real local runtime (DynamoDB Local, SQS emulator, WebSocket server).
    // A 2-core CI machine running the local runtime is slow at times: hooks and tests get 60 s.
    { ...esm, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'], slowTestThreshold: 30, testTimeout: 60_000 },
  ],
};
