/**
 * `tessera events [--user EMAIL|ID] [--type T] [--limit N] [--before CURSOR|TIME]`: the
 * security log of every user, or one, newest first (the admin API's `GET /admin/events`).
 */
import { listAllEvents } from '../auth/admin/list-all-events.js';
import type { AdminEvent } from '../store/admin-store.js';
import { limitFlag, parseFlags, userIdOf, withAdmin, type AdminCli } from './admin-setup.js';

/** Runs `tessera events …` with the arguments after `events`; undefined when they are wrong (main.ts prints the usage). */
export async function eventsCommand(args: readonly string[]): Promise<number | undefined> {
  const flags = parseFlags(args, ['--user', '--type', '--limit', '--before']);
  const limit = limitFlag(flags?.options.get('--limit'));
  if (!flags || flags.positional.length > 0 || limit === null) return undefined;
  const { options } = flags;
  return withAdmin((cli) => printEvents(cli, options.get('--user'), options.get('--type'), limit, options.get('--before')));
}

async function printEvents(cli: AdminCli, user: string | undefined, type: string | undefined, limit: number | undefined, before: string | undefined): Promise<number> {
  const userId = user === undefined ? undefined : await userIdOf(cli, user);
  if (user !== undefined && userId === undefined) return 1;
  const page = await listAllEvents(cli, { userId, type, limit, before });
  for (const event of page.events) process.stdout.write(`${line(event)}\n`);
  if (page.events.length === 0) process.stdout.write('no events\n');
  if (page.nextCursor) {
    const again = [user !== undefined ? `--user ${user}` : '', type !== undefined ? `--type ${type}` : '', limit !== undefined ? `--limit ${limit}` : '']
      .filter(Boolean).join(' ');
    process.stdout.write(`more: tessera events ${again ? `${again} ` : ''}--before ${page.nextCursor}\n`);
  }
  return 0;
}

/** `2026-11-30T12:00:00.000Z  admin_action  user <id>  from <ip>  users.update by cli:ada {…}` */
function line(event: AdminEvent): string {
  const parts = [event.createdAt.toISOString(), event.type, event.userId ? `user ${event.userId}` : 'no user'];
  if (event.ip) parts.push(`from ${event.ip}`);
  if (event.sessionId) parts.push(`session ${event.sessionId}`);
  if (event.detail) {
    const { actor, action, ...rest } = event.detail;
    const more = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
    parts.push(`${typeof action === 'string' ? `${action} ` : ''}${typeof actor === 'string' ? `by ${actor}` : ''}${more}`.trim());
  }
  return parts.join('  ');
}
