import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Builds dist/ first: subprocess tests run bin/convert.js, which runs the compiled code.
    globalSetup: ['test/setup/build-dist.ts'],
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'plugins/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // onnxruntime-node sessions are heavy; two forks match the 2-core machine.
    pool: 'forks',
    maxWorkers: 2,
  },
});
