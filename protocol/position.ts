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

export function formatPosition(epoch: string, version: number): string {
  return `${epoch}:${version}`;
}

/** Parses `<epoch>:<version>`; undefined when it is not one. */
export function parsePosition(text: string): Position | undefined {
  const match = POSITION.exec(text);
  return match ? { epoch: match[1]!, version: Number(match[2]) } : undefined;
}
