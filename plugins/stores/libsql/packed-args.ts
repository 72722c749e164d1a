/**
 * Statements as they cross to the writer thread (writer.ts). postMessage's structured clone pays per value, not per
 * byte: a commit slice of 83 updates is ~1,000 arguments, of which 83 are the objects' JSON texts and the rest small
 * strings and numbers. Sent as one JSON text of the small ones beside the long strings as they are, a slice cost the
 * main thread a third of its clone (scratch measure: 0.45 ms against 1.2 per 1,000 rows, building included), and
 * posting commits was a third of the main thread's time in an initial sync (`bun --cpu-prof`).
 *
 * Only what JSON gives back exactly is packed: strings, finite numbers (not -0) and null. A statement with any other
 * argument (a bigint, a blob, a boolean) crosses as it is.
 */
import type { InStatement, InValue } from "@libsql/client";

/** Strings at least this long cross as they are; shorter ones go into the JSON text. */
const LONG_STRING = 200;

export interface PackedStatement {
  sql: string;
  /** JSON of the arguments, with 0 where a long string goes. */
  small: string;
  long: string[];
  /** The argument index of each of `long`. */
  longAt: number[];
}

export type PostedStatement = InStatement | PackedStatement;

function packable(value: InValue): boolean {
  if (value === null || typeof value === "string") return true;
  return typeof value === "number" && Number.isFinite(value) && !Object.is(value, -0);
}

export function pack(statement: InStatement): PostedStatement {
  if (typeof statement === "string" || !Array.isArray(statement.args)) return statement;
  const args = statement.args;
  if (!args.every(packable)) return statement;
  const small: InValue[] = new Array(args.length);
  const long: string[] = [];
  const longAt: number[] = [];
  for (let i = 0; i < args.length; i++) {
    const value = args[i]!;
    if (typeof value === "string" && value.length >= LONG_STRING) {
      long.push(value);
      longAt.push(i);
      small[i] = 0;
    } else small[i] = value;
  }
  return { sql: statement.sql, small: JSON.stringify(small), long, longAt };
}

export function unpack(statement: PostedStatement): InStatement {
  if (typeof statement === "string" || !("small" in statement)) return statement;
  const args = JSON.parse(statement.small) as InValue[];
  for (let k = 0; k < statement.long.length; k++) args[statement.longAt[k]!] = statement.long[k]!;
  return { sql: statement.sql, args };
}
