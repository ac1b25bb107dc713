import { createHmac, randomBytes } from 'node:crypto';
import { deviceName } from '../core/device-name.js';
import type { RequestMeta, Transport } from '../core/vocabulary.js';
import type { AccountStore } from '../store/account-store.js';
import type { Store } from '../store/store.js';

export interface KnownDeviceDeps {
  accounts: Pick<AccountStore, 'rememberDevice'>;
  store: Pick<Store, 'recordEvent'>;
  /** HMAC keys of device identifiers (from TESSERA_SECRET, then TESSERA_SECRET_PREVIOUS): the table holds no cookie value. */
  deviceKeys: { current: Buffer; previous: Buffer | undefined };
  clock: () => Date;
}

/** Where a sign-in came from: a browser's device cookie, or an app's name and network. */
export interface DeviceSeen {
  transport: Transport;
  /** The browser's long-lived device cookie (cookie transport): set by the server when absent. */
  cookie: string | undefined;
  meta: RequestMeta;
}

/** A new device cookie's value: random, no meaning. */
export const newDeviceCookie = () => randomBytes(16).toString('base64url');

/**
 * Remembers the device of a sign-in and records `new_device` (which mails the user, NOTIFY
 * `new_device`) when the account knew other devices but not this one. A browser is its
 * device cookie; an app without cookies is its name ("Safari on iOS") and its network (an
 * IPv4 /24 or IPv6 /48), so a phone moving between networks may count as new.
 */
export async function noteDevice(deps: KnownDeviceDeps, userId: string, sessionId: string, seen: DeviceSeen): Promise<void> {
  const identity = seen.transport === 'cookie' && seen.cookie
    ? `cookie:${seen.cookie}`
    : `app:${deviceName(seen.meta.userAgent)}|${network(seen.meta.ip)}`;
  const mac = (key: Buffer) => createHmac('sha256', key).update(identity).digest('base64url');
  const { current, previous } = deps.deviceKeys;
  const now = deps.clock();
  if (await deps.accounts.rememberDevice(userId, mac(current), now, previous && mac(previous))) {
    await deps.store.recordEvent(userId, sessionId, 'new_device', seen.meta, now);
  }
}

function network(ip: string | null): string {
  if (!ip) return '';
  const v4 = /^(?:::ffff:)?(\d+\.\d+\.\d+)\.\d+$/.exec(ip);
  if (v4) return `${v4[1]}.0/24`;
  return `${ip.split(':').slice(0, 3).join(':')}::/48`;
}
