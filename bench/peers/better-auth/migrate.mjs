// Creates better-auth's tables (user, session, account, verification, jwks) in
// DATABASE_SCHEMA, programmatically, with getMigrations from better-auth/db/migration
// (what `npx auth migrate` runs). The schema itself must exist.
import { getMigrations } from 'better-auth/db/migration';
import { createAuth } from './auth.mjs';

const { auth, pool } = createAuth({
  databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  schema: process.env.DATABASE_SCHEMA,
  secret: process.env.BETTER_AUTH_SECRET ?? 'migration-only-secret-never-used-to-sign-anything',
  baseURL: process.env.BETTER_AUTH_URL ?? 'http://127.0.0.1:3000',
});
try {
  const { toBeCreated, toBeAdded, runMigrations } = await getMigrations(auth.options);
  await runMigrations();
  console.log(`better-auth: created ${toBeCreated.map((t) => t.table).join(', ') || 'no tables'}${toBeAdded.length ? `, altered ${toBeAdded.map((t) => t.table).join(', ')}` : ''} in ${process.env.DATABASE_SCHEMA}`);
} finally {
  await pool.end();
}
