/**
 * A point in the log, `<epoch>:<version>`: SSE event ids, `Last-Event-ID`, `since`,
 * `/v1/updates`' `next` and NATS replay's `from` all spell it so. One grammar for all of them:
 * an epoch of visible ASCII characters but `:`, a version without leading zeros.
 */

export interface Position {
  epoch: string;
  version: number;
}

const POSITION = /^([\x21-\x39\x3b-\x7e]+):(0|[1-9]\d{0,14})$/;

/**
 * The largest version a position spells (15 digits): every one a safe integer, with room to spare (2^53 has 16).
 * Versions asked for otherwise (NATS replay's `to`) have the same bound.
 */
export const MAX_VERSION = 999_999_999_999_999;

export function formatPosition(epoch: string, version: number): string {
  return `${epoch}:${version}`;
}

/** Parses `<epoch>:<version>`; undefined when it is not one. */
export function parsePosition(text: string): Position | undefined {
  const match = POSITION.exec(text);
  return match ? { epoch: match[1]!, version: Number(match[2]) } : undefined;
}
