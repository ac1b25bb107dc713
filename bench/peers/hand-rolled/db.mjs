import pg from 'pg';

/** A schema name goes into the connection's search_path: plain identifiers only. */
function checkSchema(schema) {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema ?? '')) throw new Error(`DATABASE_SCHEMA must be a plain lower-case identifier, got ${JSON.stringify(schema)}`);
  return schema;
}

// Tessera's pool size.
export const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  max: 10,
  options: `-c search_path=${checkSchema(process.env.DATABASE_SCHEMA)}`,
});
// Without a listener an idle client's connection error is an uncaught 'error' event.
pool.on('error', (error) => console.warn(`pg pool: ${error.message}`));
