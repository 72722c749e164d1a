/**
 * One statement on a connection of libSQL's own binding (`libsql`), its rows as plain records by column name, as
 * @libsql/client's rows answer by name: the store's writer thread (writer-worker.ts) and `new-epoch`'s one connection
 * (new-epoch.ts) run theirs so.
 */
import type Database from "libsql";
import type { InStatement } from "@libsql/client";
import type { WriteResult } from "./writer.ts";

/** Runs `inStatement`, prepared by `prepare` (which may keep statements prepared across calls). */
export function runStatement(prepare: (sql: string) => Database.Statement, inStatement: InStatement): WriteResult {
  const { sql, args = [] } = typeof inStatement === "string" ? { sql: inStatement } : inStatement;
  const statement = prepare(sql);
  if (statement.reader) return { rows: statement.all(args) as WriteResult["rows"], rowsAffected: 0 };
  return { rows: [], rowsAffected: statement.run(args).changes };
}
