// better-auth as a team would configure it for an API: email + password, the bearer
// plugin (session token in `Authorization: Bearer`) and the jwt plugin (GET /api/auth/token
// hands out a short-lived signed JWT). Everything else at its defaults: session
// expiresIn 7 d, updateAge 1 d, cookie cache off, no secondary storage, joins off,
// EdDSA (Ed25519) JWKS key, JWT lifetime 15 min. The one departure: rate limiting is
// off (better-auth turns it on in production), as it is for Tessera in the bench,
// since the load hammers one session per worker.
import { betterAuth } from 'better-auth';
import { bearer, jwt } from 'better-auth/plugins';
import pg from 'pg';

/** A schema name goes into the connection's search_path: plain identifiers only. */
export function checkSchema(schema) {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema ?? '')) throw new Error(`DATABASE_SCHEMA must be a plain lower-case identifier, got ${JSON.stringify(schema)}`);
  return schema;
}

/**
 * @param {{ databaseUrl: string; schema: string; secret: string; baseURL: string }} options
 */
export function createAuth({ databaseUrl, schema, secret, baseURL }) {
  // Tessera's pool size; the schema is chosen the way better-auth's PostgreSQL docs
  // suggest for a non-default schema: through the connection's search_path.
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: 10,
    options: `-c search_path=${checkSchema(schema)}`,
  });
  // Without a listener an idle client's connection error is an uncaught 'error' event.
  pool.on('error', (error) => console.warn(`pg pool: ${error.message}`));
  const auth = betterAuth({
    baseURL,
    secret,
    database: pool,
    emailAndPassword: { enabled: true },
    rateLimit: { enabled: false },
    plugins: [bearer(), jwt()],
  });
  return { auth, pool };
}
