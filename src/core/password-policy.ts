import { dictionary } from '@zxcvbn-ts/language-common';
import { TesseraError } from './errors.js';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './vocabulary.js';

/**
 * The length rule: 8 to 1024 Unicode code points, never truncated, no composition rules
 * (NIST SP 800-63B). Sign-in checks only this, before hashing, so a megabyte password
 * costs nothing.
 */
export function assertPasswordLength(password: string): void {
  // Cheap bound first: more than 2× the limit in UTF-16 units cannot be within it in code points.
  const length = password.length > PASSWORD_MAX_LENGTH * 2 ? Infinity : [...password].length;
  if (length < PASSWORD_MIN_LENGTH || length > PASSWORD_MAX_LENGTH) {
    throw new TesseraError('weak_password', {
      detail: `The password must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters long`,
    });
  }
}

/**
 * A password being set (register, change): the length rule, and not one of the ~18,000
 * most common passwords that long (zxcvbn's list, compared case-insensitively; ASVS 6.2.4).
 */
export function assertPasswordPolicy(password: string): void {
  assertPasswordLength(password);
  if (isCommonPassword(password)) {
    throw new TesseraError('weak_password', { detail: 'This password is one of the most commonly used; choose another' });
  }
}

let common: Set<string> | undefined;

function isCommonPassword(password: string): boolean {
  // Built on first use: the list is only needed by the few requests that set a password.
  common ??= new Set(dictionary['passwords-common'].filter((p) => p.length >= PASSWORD_MIN_LENGTH));
  return common.has(password.toLowerCase());
}

/** Emails are compared case-insensitively; this is the stored, compared form. */
export function normalizeEmail(email: string): string {
  return email.trim().normalize('NFC').toLowerCase();
}
