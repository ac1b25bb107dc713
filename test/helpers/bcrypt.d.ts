/**
 * The part of the `bcrypt` package the tests use to make hashes the way a Node.js app
 * would have (a dev dependency that ships no types; @types/bcrypt is not installed).
 */
declare module 'bcrypt' {
  export function hashSync(data: string, saltOrRounds: string | number): string;
  /** `minor` picks the `$2a$` or `$2b$` label. */
  export function genSaltSync(rounds?: number, minor?: 'a' | 'b'): string;
  export function compareSync(data: string, encrypted: string): boolean;
  const bcrypt: { hashSync: typeof hashSync; genSaltSync: typeof genSaltSync; compareSync: typeof compareSync };
  export default bcrypt;
}
