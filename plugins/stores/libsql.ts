/**
 * The libSQL store: the update log, the current state of every object, the epoch, stream
 * heads, source resume points and sink cursors, in one embedded SQLite file (`file:`) or
 * a remote libSQL server. This file declares it (its config); the store as it runs:
 * ./libsql/store.ts; tables and migrations: ./libsql/schema.ts; the writes, fenced
 * against a second writer: ./libsql/fenced-writes.ts.
 */
import * as v from "valibot";
import { defineStore } from "../../sdk/contract.ts";
import { createLibsqlStore } from "./libsql/store.ts";
import { fileUrlProblem, isFileUrl, remoteUrlProblem } from "./libsql/connection.ts";
import { guessedKeys, positiveDuration } from "../../sdk/schema.ts";
import { clearTextHost, urlCredentialPlaces } from "../../protocol/clear-text.ts";
import { redactServer } from "../../protocol/subjects.ts";

/** `file:<path>`, or a remote scheme with a host. */
const URL_PATTERN = /^(?:file:.+|(?:libsql|https?|wss?):\/\/[^/?#]+)/i;

/**
 * Embedded (default):
 * ```yaml
 * store:
 *   type: libsql
 *   url: file:/var/lib/kubemeta/kubemeta.db   # relative paths are relative to the working directory
 * ```
 * The parent directory is created. Keep the file on a persistent volume: a lost file
 * means a new epoch, and every consumer resets.
 *
 * Remote libSQL server (sqld, Turso), when the store must outlive the node or be shared:
 * ```yaml
 * store:
 *   type: libsql
 *   url: libsql://kubemeta-myorg.turso.io     # or https://…, http://host:8080, wss://…, ws://…
 *   authToken: ${LIBSQL_AUTH_TOKEN}            # a JWT; omit for a server without auth
 * ```
 * `libsql://` speaks HTTPS (`?tls=0` and an explicit port for plain HTTP). Replicas (`ha`)
 * share a remote store: each leader raises the store's term, and a commit of any other term
 * is refused in its own transaction, so the log never forks.
 */
const schema = v.strictObject({
  url: v.optional(
    v.pipe(
      v.string(),
      v.check(
        (url) => URL_PATTERN.test(url),
        (issue) =>
          `unsupported store url ${JSON.stringify(redactServer(String(issue.input)))}: ` +
          "use file:<path>, libsql://<host>, http(s)://<host> or ws(s)://<host>",
      ),
      v.rawCheck(({ dataset, addIssue }) => {
        // A url of no scheme the store takes (`kubemeta.db`) is told the schemes alone: "must be a URL" adds nothing.
        const url = dataset.typed && !dataset.issues ? dataset.value : undefined;
        const problem = url === undefined ? undefined : isFileUrl(url) ? fileUrlProblem(url) : remoteUrlProblem(url);
        if (problem) addIssue({ message: problem });
      }),
      guessedKeys(["file", "path"], "a file store is url: file:<path>"),
      v.description(
        "`file:<path>` (embedded; its directory is created; no `?query`) on a persistent volume, " +
          "or a remote libSQL server: `libsql://…`, `https://…`, `wss://…`.",
      ),
    ),
    "file:./data/kubemeta.db",
  ),
  authToken: v.optional(
    v.pipe(
      v.string(),
      // A Secret's file often ends with a line break: fetch drops it from the header, Hrana's WebSocket `hello` sent
      // it.
      v.transform((token) => token.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "")),
      v.description(
        "Token of a remote server, e.g. `${LIBSQL_AUTH_TOKEN}`, the spaces and line breaks around it dropped; " +
          "ignored for `file:`.",
      ),
    ),
  ),
  timeout: v.optional(
    v.pipe(
      positiveDuration,
      v.description(
        "How long a remote server may take to answer a request, its work included: one that accepts the " +
          "connection and never answers fails the open, a commit (retried) or a read after this; ignored for " +
          "`file:`. Over `ws(s)://` a request given up closes its connection, failing the others waiting on it.",
      ),
    ),
    "60s",
  ),
});

export default defineStore({
  type: "libsql",
  description: "libSQL: an embedded SQLite file (file:) or a remote libSQL server (libsql://, https://).",
  schema,
  example: { url: "file:./data/kubemeta.db" },
  unshareable: (config) =>
    isFileUrl(config.url)
      ? `${config.url} is a file on one pod's volume; use a remote libSQL server (libsql://, https://)`
      : undefined,
  warnings: ({ url, authToken }) => {
    // A libsql:// url speaks HTTPS unless `?tls=0`; @libsql/client takes a token from the url's query too.
    const plain = new URL(url).searchParams.get("tls") === "0" ? ["libsql:"] : [];
    const host = isFileUrl(url) ? undefined : clearTextHost(url, plain);
    const sent = [...(authToken ? ["authToken"] : []), ...urlCredentialPlaces(url)];
    if (host === undefined || sent.length === 0) return [];
    return [
      `${sent.join(", ")} sent to ${host} unencrypted (no TLS): anyone on the network path reads them; ` +
        "use an https://, wss:// or libsql:// url (without ?tls=0)",
    ];
  },
  create: createLibsqlStore,
});
