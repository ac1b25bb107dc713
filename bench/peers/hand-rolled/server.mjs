// The auth server a team writes by hand from the usual tutorial (see the seeds): Express,
// jsonwebtoken (HS256, 15 min access tokens), bcrypt (cost 10), pg, and opaque refresh
// tokens stored as SHA-256 hashes, rotated on every use.
//
// Env: PORT, HOST (127.0.0.1), DATABASE_URL, DATABASE_SCHEMA, JWT_SECRET, NODE_ENV=production.
import crypto from 'node:crypto';
import bcrypt from 'bcrypt';
import express from 'express';
import jwt from 'jsonwebtoken';
import { pool } from './db.mjs';

const PORT = Number(process.env.PORT ?? 3000);
const HOST = process.env.HOST ?? '127.0.0.1';
const JWT_SECRET = process.env.JWT_SECRET;
if (!JWT_SECRET) throw new Error('JWT_SECRET is required');

const ACCESS_TOKEN_TTL = '15m';
const REFRESH_TOKEN_TTL_DAYS = 7;
const BCRYPT_ROUNDS = 10;

const days = (n) => n * 24 * 60 * 60 * 1000;
const hashToken = (raw) => crypto.createHash('sha256').update(raw).digest('hex');

function signAccessToken(userId) {
  return jwt.sign({ sub: userId }, JWT_SECRET, { algorithm: 'HS256', expiresIn: ACCESS_TOKEN_TTL });
}

/** A new opaque refresh token: the client gets the raw value, the database its hash. */
async function issueRefreshToken(db, userId) {
  const raw = crypto.randomBytes(64).toString('hex');
  await db.query(
    'INSERT INTO refresh_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)',
    [hashToken(raw), userId, new Date(Date.now() + days(REFRESH_TOKEN_TTL_DAYS))],
  );
  return raw;
}

function authenticate(req, res, next) {
  const header = req.headers.authorization ?? '';
  if (!header.startsWith('Bearer ')) return res.status(401).json({ error: 'Missing token' });
  try {
    req.user = jwt.verify(header.slice(7), JWT_SECRET, { algorithms: ['HS256'] });
    next();
  } catch {
    res.status(401).json({ error: 'Invalid or expired token' });
  }
}

const app = express();
app.use(express.json());

app.get('/readyz', (req, res) => {
  res.send('ok');
});

app.post('/api/auth/register', async (req, res) => {
  const { email, password, name } = req.body ?? {};
  if (typeof email !== 'string' || typeof password !== 'string' || password.length < 8) {
    return res.status(400).json({ error: 'Email and a password of at least 8 characters are required' });
  }
  const passwordHash = await bcrypt.hash(password, BCRYPT_ROUNDS);
  try {
    const { rows } = await pool.query(
      'INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3) RETURNING id, email, name',
      [email.toLowerCase(), name ?? null, passwordHash],
    );
    res.status(201).json({ user: rows[0] });
  } catch (error) {
    if (error.code === '23505') return res.status(409).json({ error: 'Email already registered' });
    throw error;
  }
});

app.post('/api/auth/login', async (req, res) => {
  const { email, password } = req.body ?? {};
  if (typeof email !== 'string' || typeof password !== 'string') {
    return res.status(400).json({ error: 'Email and password are required' });
  }
  const { rows } = await pool.query('SELECT id, email, name, password_hash FROM users WHERE email = $1', [email.toLowerCase()]);
  const user = rows[0];
  if (!user || !(await bcrypt.compare(password, user.password_hash))) {
    return res.status(401).json({ error: 'Invalid credentials' });
  }
  const refreshToken = await issueRefreshToken(pool, user.id);
  res.json({
    accessToken: signAccessToken(user.id),
    refreshToken,
    user: { id: user.id, email: user.email, name: user.name },
  });
});

// Rotation: the presented token is revoked and a new one issued, in one transaction. The
// conditional UPDATE is the check: a revoked, expired or unknown token matches no row,
// and of two concurrent uses of one token only the first does.
app.post('/api/auth/refresh', async (req, res) => {
  const { refreshToken } = req.body ?? {};
  if (typeof refreshToken !== 'string') return res.status(400).json({ error: 'refreshToken is required' });
  const client = await pool.connect();
  let userId;
  let newRefreshToken;
  try {
    await client.query('BEGIN');
    const { rows } = await client.query(
      'UPDATE refresh_tokens SET revoked = true WHERE token_hash = $1 AND revoked = false AND expires_at > now() RETURNING user_id',
      [hashToken(refreshToken)],
    );
    if (rows.length === 0) {
      await client.query('ROLLBACK');
      return res.status(401).json({ error: 'Invalid refresh token' });
    }
    userId = rows[0].user_id;
    newRefreshToken = await issueRefreshToken(client, userId);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
  res.json({ accessToken: signAccessToken(userId), refreshToken: newRefreshToken });
});

app.get('/api/auth/me', authenticate, async (req, res) => {
  const { rows } = await pool.query('SELECT id, email, name FROM users WHERE id = $1', [req.user.sub]);
  if (rows.length === 0) return res.status(401).json({ error: 'User not found' });
  res.json({ user: rows[0] });
});

app.use((error, req, res, next) => {
  const status = error.status ?? error.statusCode ?? 500;
  if (status >= 500) console.error(error);
  res.status(status).json({ error: status >= 500 ? 'Internal server error' : error.message });
});

await pool.query('SELECT 1');
const server = app.listen(PORT, HOST);

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
