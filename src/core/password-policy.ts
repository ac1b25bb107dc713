import { TesseraError } from './errors.js';

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 1024;

/**
 * Length rules only, no composition rules (NIST SP 800-63B). Counted in Unicode
 * code points. Runs before any hashing, so a megabyte password costs nothing.
 */
export function assertPasswordPolicy(password: string): void {
  // Cheap bound first: a string of more than 4× the limit in UTF-16 units cannot fit.
  const length = password.length > PASSWORD_MAX_LENGTH * 2 ? Infinity : [...password].length;
  if (length < PASSWORD_MIN_LENGTH || length > PASSWORD_MAX_LENGTH) {
    throw new TesseraError('weak_password', {
      detail: `The password must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters long`,
    });
  }
}

/** Emails are compared case-insensitively; this is the stored, compared form. */
export function normalizeEmail(email: string): string {
  return email.trim().normalize('NFC').toLowerCase();
}
