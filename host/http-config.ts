/** The `http` section: the one listener that the host and every plugin share. */
import * as v from "valibot";
import { existsSync } from "node:fs";
import { duration, port } from "../sdk/schema.ts";

const readableFile = v.pipe(
  v.string(),
  v.minLength(1),
  v.check((path) => existsSync(path), "file not found (paths are relative to the working directory)"),
);

/** Bun.serve takes whole seconds; 0 disables the timeout, and 255 s is its maximum. */
const idleTimeout = v.pipe(
  duration,
  v.check((ms) => ms <= 255_000, "at most 255s (Bun.serve's limit)"),
  v.transform((ms) => Math.ceil(ms / 1000)),
);

export const httpSchema = v.strictObject({
  address: v.optional(v.pipe(v.string(), v.description("Interface to listen on.")), "0.0.0.0"),
  port: v.optional(v.pipe(port, v.description("TCP port; `0` picks a free one.")), 8080),
  tls: v.optional(
    v.pipe(
      v.strictObject({
        cert: v.pipe(
          readableFile,
          v.description("PEM certificate chain file; it must exist when the config is checked."),
        ),
        key: v.pipe(readableFile, v.description("PEM private key file; it must exist when the config is checked.")),
      }),
      v.description("Serve HTTPS with this certificate and key; without it, plain HTTP."),
    ),
  ),
  tokens: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.minLength(16, "a token needs at least 16 characters; use a long random value"))),
      v.description(
        "Bearer tokens required on every path but `/healthz` and `/readyz` (plugin routes included), " +
          "at least 16 characters each, typically `${ENV_VAR}`s. Any one of them is enough, " +
          "so a token can be rotated without downtime. Empty: no auth.",
      ),
    ),
    [],
  ),
  corsOrigins: v.optional(
    v.pipe(
      v.array(
        v.pipe(v.string(), v.regex(/^(\*|https?:\/\/[^/\s]+)$/, 'an origin such as "https://ui.example.com", or "*"')),
      ),
      v.description(
        "Origins allowed to call the API from a browser (e.g. an `EventSource` on a dashboard), " +
          'such as `https://ui.example.com`; `"*"` for any.',
      ),
    ),
    [],
  ),
  idleTimeout: v.optional(
    v.pipe(
      idleTimeout,
      v.description(
        "A plain request or response that sends nothing for this long is closed (at most `255s`, Bun's limit; " +
          "`0` disables it), some seconds later in fact: Bun checks every 4 s, and a connection that has sent " +
          "nothing or half a request was seen closed up to 8 s late. SSE streams are exempt: they keep themselves " +
          "alive with heartbeats.",
      ),
    ),
    "30s",
  ),
});

export type HttpConfig = v.InferOutput<typeof httpSchema>;
