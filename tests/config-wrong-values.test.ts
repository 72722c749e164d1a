/**
 * Values users write wrong, as they would from the README alone: each is one line at its path that names the fix,
 * not two lines of one mistake, nor valibot's words for a type where a config's would say what to write.
 */
import { expect, test } from "bun:test";
import { issuesOf } from "./config-issues.ts";

const SECRET = "s3cr3t-of-32-bytes-at-least-0123456789";

test("a url written without its scheme is one line, naming the schemes to write", async () => {
  expect(
    await issuesOf({
      store: { type: "libsql", url: "kubemeta.db" },
      sinks: [
        { type: "webhook", url: "example.com/hook", secret: SECRET },
        { type: "webhook", name: "spaced", url: "http://exa mple.com/hook", secret: SECRET },
      ],
    }),
  ).toEqual([
    'store.url: unsupported store url "kubemeta.db": use file:<path>, libsql://<host>, http(s)://<host> or ' +
      "ws(s)://<host>",
    "sinks[0].url: must be an http:// or https:// URL",
    "sinks[1].url: must be a URL (a space in it, or a port out of range?)",
  ]);
});
