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
  /** Interface to listen on. */
  address: v.optional(v.string(), "0.0.0.0"),
  /** TCP port; 0 picks a free one. */
  port: v.optional(port, 8080),
  /** Serve HTTPS with this PEM certificate chain and key. */
  tls: v.optional(v.strictObject({ cert: readableFile, key: readableFile })),
  /**
   * Bearer tokens accepted on /v1 and /metrics (health endpoints stay open). Any one of
   * them is enough, so tokens can be rotated without downtime. Empty: no auth.
   */
  tokens: v.optional(v.array(v.pipe(v.string(), v.minLength(16, "a token needs at least 16 characters; use a long random value"))), []),
  /** Origins allowed to call the API from a browser (e.g. an EventSource on a dashboard); "*" for any. */
  corsOrigins: v.optional(v.array(v.pipe(v.string(), v.regex(/^(\*|https?:\/\/[^/\s]+)$/, 'an origin such as "https://ui.example.com", or "*"'))), []),
  /**
   * A request or response that sends nothing for this long is closed. Streams (SSE)
   * are exempt: they keep themselves alive with heartbeats. 0 disables it.
   */
  idleTimeout: v.optional(idleTimeout, "30s"),
});

export type HttpConfig = v.InferOutput<typeof httpSchema>;
