// Tests live outside src/, so they get tsconfig.json's options with rootDir lifted (inline
// options replace the file in ts-jest, hence the merge). ts-jest only transpiles
// (isolatedModules): `npm test` type-checks src/ and test/ once, with `tsc -p tsconfig.test.json`,
// instead of once per test file.
const os = require('node:os');
// The incremental build info is tsc's, not ts-jest's.
const { incremental, tsBuildInfoFile, ...compilerOptions } = require('./tsconfig.json').compilerOptions;

/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 60000,
  // Most test files wait on child processes and sockets, not the CPU: two workers keep a 2-core
  // machine busy where jest's default (cores - 1) would run one file at a time.
  maxWorkers: Math.max(2, os.availableParallelism() - 1),
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: { ...compilerOptions, rootDir: '.', types: ['node', 'jest'], isolatedModules: true } }],
  },
};
