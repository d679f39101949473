// Tests live outside src/, so they get tsconfig.json's options with rootDir lifted (inline
// options replace the file in ts-jest, hence the merge). ts-jest only transpiles
// (isolatedModules): `npm test` type-checks src/ and test/ once, with `tsc -p tsconfig.test.json`,
// instead of once per test file.
const { compilerOptions } = require('./tsconfig.json');

/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 60000,
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: { ...compilerOptions, rootDir: '.', types: ['node', 'jest'], isolatedModules: true } }],
  },
};
