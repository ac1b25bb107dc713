// better-auth behind Node's own HTTP server through its documented Node adapter
// (toNodeHandler), on /api/auth/*, plus GET /readyz. No per-request logging.
//
// Env: PORT, HOST (127.0.0.1), DATABASE_URL, DATABASE_SCHEMA, BETTER_AUTH_SECRET,
// BETTER_AUTH_URL (defaults to http://HOST:PORT), NODE_ENV=production.
import { createServer } from 'node:http';
import { toNodeHandler } from 'better-auth/node';
import { createAuth } from './auth.mjs';

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
const secret = process.env.BETTER_AUTH_SECRET;
if (!secret) throw new Error('BETTER_AUTH_SECRET is required');

const { auth, pool } = createAuth({
  databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  schema: process.env.DATABASE_SCHEMA,
  secret,
  baseURL: process.env.BETTER_AUTH_URL ?? `http://${host}:${port}`,
});
// better-auth builds its context lazily on the first request: build it now, and check
// the database answers, so that /readyz means ready.
await auth.$context;
await pool.query('select 1');

const handler = toNodeHandler(auth);
const server = createServer((req, res) => {
  if (req.url === '/readyz' && req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    return;
  }
  if (req.url?.startsWith('/api/auth/')) {
    handler(req, res);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
});
server.listen(port, host);

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  // Keep-alive connections: idle ones close now; a client that never lets go gets 5 s.
  const force = setTimeout(() => server.closeAllConnections(), 5_000);
  force.unref();
  server.close(async () => {
    clearTimeout(force);
    await pool.end().catch((error) => {
      console.warn(`closing the pool: ${error.message}`);
      process.exitCode = 1;
    });
    process.exit();
  });
  server.closeIdleConnections();
});
