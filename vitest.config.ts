import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file gets its own database (PGlite in memory, or its own PostgreSQL schema).
    pool: 'forks',
    // Two files at a time on CI's two cores: most of a file's time is spent waiting on
    // PostgreSQL, SMTP, Chromium or another process, not on the CPU (Vitest's default is one
    // fewer worker than cores: one, here).
    maxWorkers: 2,
  },
});
