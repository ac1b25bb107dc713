/**
 * Why the database could not be opened, in words, with what to do about it. The
 * driver's bare code (28000, 3D000, ECONNREFUSED) tells an operator little; DATABASE_URL
 * tells us enough to name the user, the host and the `createdb` command. Never the
 * password: only the URL's user, host, port and database name are read.
 */
export function explainDatabaseError(error: unknown, databaseUrl: string | undefined): string {
  const { code, message } = error as { code?: string; message?: string };
  const fallback = code ?? message ?? String(error);
  if (!databaseUrl || databaseUrl === 'memory://') return fallback;
  const url = new URL(databaseUrl);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port || '5432';
  const user = decodeURIComponent(url.username);
  const name = decodeURIComponent(url.pathname.slice(1)) || user;
  switch (code) {
    case '28000':
    case '28P01':
      // The server's own words ("password authentication failed for user …", "role … does not
      // exist", "no pg_hba.conf entry for host …") name the user, never the password.
      return `wrong user or password: ${message} (${code}). ` +
        `Check the user and password in DATABASE_URL, and that the server's pg_hba.conf lets this user connect from here`;
    case '3D000':
      return `the database "${name}" does not exist on ${host}:${port} (3D000). ` +
        `Create it with: createdb -h ${host} -p ${port}${user ? ` -U ${user}` : ''} ${name}`;
    case 'ECONNREFUSED':
      return `nothing listens at ${host}:${port} (ECONNREFUSED): is PostgreSQL running, and are the host and port in DATABASE_URL right?`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name "${host}" is unknown (${code}): check the host in DATABASE_URL`;
    default:
      return fallback;
  }
}
