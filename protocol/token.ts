/**
 * Bearer tokens, as `Authorization: Bearer <token>` carries them: the server's `http.tokens` and the client's `token`
 * follow one rule.
 */

/** Printable ASCII without spaces: a token with a space or a control character never matches (no header carries it). */
export const BEARER_TOKEN_PATTERN = /^[\x21-\x7e]+$/;
