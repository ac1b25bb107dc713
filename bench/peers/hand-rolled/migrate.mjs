// Creates the hand-rolled peer's tables (schema.sql) in DATABASE_SCHEMA, which must exist.
import { readFileSync } from 'node:fs';
import { pool } from './db.mjs';

try {
  await pool.query(readFileSync(new URL('./schema.sql', import.meta.url), 'utf8'));
  console.log(`hand-rolled: created users, refresh_tokens in ${process.env.DATABASE_SCHEMA}`);
} finally {
  await pool.end();
}
