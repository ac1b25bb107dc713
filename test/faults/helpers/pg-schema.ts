/**
 * A fresh PostgreSQL schema for server processes started by a test. They get it as
 * `DATABASE_SCHEMA` next to a plain `DATABASE_URL`, as an operator would configure them:
 * Tessera names its schema in every statement and never relies on `search_path`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import { describe } from 'vitest';
import { migrateToLatest, openDatabase } from '../../../src/store/database.js';
import { sayWhySkipped } from '../../helpers/skip-reason.js';

export interface FreshSchema {
  name: string;
  /** What a server process gets: DATABASE_URL (TEST_DATABASE_URL) and DATABASE_SCHEMA. */
  env: { DATABASE_URL: string; DATABASE_SCHEMA: string };
  /** The same, with the URL's host and port replaced (to route it through a proxy). */
  envVia(host: string, port: number): { DATABASE_URL: string; DATABASE_SCHEMA: string };
  /** `"schema"."table"`, as Tessera's statements name a table: what a proxy cut matches. */
  table(name: string): string;
  /** A query on the test's own direct connection, where bare table names mean the schema's. */
  query<R extends Record<string, unknown> = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  /** Every row of every table of the schema, as text (pg_dump when installed, else SELECT of each table). */
  dump(): Promise<string>;
  drop(): Promise<void>;
}

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL;

/**
 * The fault suite starts real server processes and runs for about a minute, so `npm test`
 * skips it; `npm run test:faults` (TESSERA_FAULTS=1) runs it, and CI runs both. It needs a
 * shared PostgreSQL: TEST_DATABASE_URL.
 */
export const FAULTS_ENABLED = Boolean(TEST_DATABASE_URL) && process.env.TESSERA_FAULTS === '1';
const SKIP_REASON = !TEST_DATABASE_URL ? 'needs TEST_DATABASE_URL' : 'run it with npm run test:faults (TESSERA_FAULTS=1)';

/** `describe`, or a skipped one saying why, for the fault suite. */
export function describeFaults(title: string, fn: () => void): void {
  if (FAULTS_ENABLED) describe(title, fn);
  else {
    sayWhySkipped(`fault suite: ${SKIP_REASON}`);
    describe.skip(`${title} [skipped: ${SKIP_REASON}]`, fn);
  }
}

/**
 * A new, empty schema. With `migrated`, Tessera's migrations are applied to it first, the
 * way the test helpers do (with an explicit migration-table schema). Servers started on an
 * empty schema must migrate it themselves; `many-nodes.test.ts` checks that they can.
 */
export async function freshSchema(options: { prefix?: string; migrated?: boolean } = {}): Promise<FreshSchema> {
  const prefix = options.prefix ?? 'tessera_fault';
  const base = TEST_DATABASE_URL;
  if (!base) throw new Error('TEST_DATABASE_URL is not set');
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const adminPool = new pg.Pool({ connectionString: base, max: 2 });
  await adminPool.query(`create schema ${name}`);
  if (options.migrated) {
    const { db } = await openDatabase({ url: base, dataDir: '', schema: name, poolSize: 1 });
    try {
      await migrateToLatest(db, name);
    } finally {
      await db.destroy();
    }
  }
  // Only the test's inspection queries use search_path (a direct connection, never a pooler), so
  // that they can say `select … from sessions`; the servers under test get DATABASE_SCHEMA.
  const pool = new pg.Pool({ connectionString: base, max: 3, options: `-c search_path=${name}` });
  return {
    name,
    env: { DATABASE_URL: base, DATABASE_SCHEMA: name },
    table: (table) => `"${name}"."${table}"`,
    envVia(host, port) {
      const u = new URL(base);
      u.hostname = host;
      u.port = String(port);
      return { DATABASE_URL: u.toString(), DATABASE_SCHEMA: name };
    },
    async query(text, params) {
      return (await pool.query(text, params)).rows;
    },
    async dump() {
      const u = new URL(base);
      try {
        const { stdout } = await promisify(execFile)(
          'pg_dump',
          ['--data-only', '--no-owner', '-n', name, '-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username || 'postgres'), u.pathname.slice(1)],
          { env: { ...process.env, PGPASSWORD: decodeURIComponent(u.password) }, maxBuffer: 64 * 1024 * 1024, timeout: 30_000 },
        );
        return stdout;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        // no pg_dump on this machine: every row of every table, in text form
        const tables = await pool.query<{ table_name: string }>(
          'select table_name from information_schema.tables where table_schema = $1 order by 1',
          [name],
        );
        const parts: string[] = [];
        for (const { table_name } of tables.rows) {
          const rows = await pool.query(`select t::text as row from ${name}."${table_name}" t`);
          parts.push(`-- ${table_name}\n${rows.rows.map((r: { row: string }) => r.row).join('\n')}`);
        }
        return parts.join('\n');
      }
    },
    async drop() {
      await pool.end().catch(() => {});
      try {
        await adminPool.query(`drop schema if exists ${name} cascade`);
      } finally {
        await adminPool.end();
      }
    },
  };
}
