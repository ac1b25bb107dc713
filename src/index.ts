export { buildApp, type BuildOptions } from './server/app.js';
export { loadConfig, type Config } from './core/config.js';
export { ERRORS, TesseraError, type ErrorCode, type Problem } from './core/errors.js';
export { verifyAccessToken, type AccessTokenClaims } from './core/access-token.js';
export { openDatabase, migrateToLatest } from './store/database.js';
export { Store } from './store/store.js';
export { embedTessera, type EmbedOptions, type EmbeddedTessera } from './server/embed.js';
export type { ClaimsHook } from './auth/issue-tokens.js';
