/**
 * A minimal client for tests against the test API server: Bun's fetch with the
 * server's CA and credentials (client-node's own requests cannot carry the CA under
 * Bun, see DESIGN.md), and a line reader for watch streams with deadlines.
 */
import type { KubeObject } from "../sdk/model.ts";
import type { TestApiServer } from "../simulator/index.ts";
import { makePod } from "../simulator/pods.ts";

const REAL_CAPTURES = new URL("./fixtures/k8s/real/", import.meta.url);

/** A file of tests/fixtures/k8s/real/ (see SOURCES.md there), as text. */
export function realFixtureText(path: string): Promise<string> {
  return Bun.file(new URL(path, REAL_CAPTURES)).text();
}

export async function realFixture<T = Record<string, unknown>>(path: string): Promise<T> {
  return JSON.parse(await realFixtureText(path)) as T;
}

export const keysOf = (value: unknown): string[] => Object.keys(value as object);

/** A running pod on a fixed node, for tests that only care about names and labels. */
export function testPod(
  name: string,
  namespace = "default",
  labels: Record<string, string> = { app: "web" },
  node = "ip-10-0-1-23.eu-west-1.compute.internal",
): KubeObject {
  return makePod({ name, namespace, node, labels });
}

export async function listJson(server: TestApiServer, path: string) {
  const response = await apiFetch(server, path);
  return {
    status: response.status,
    body: (await response.json()) as { metadata: Record<string, unknown>; items: KubeObject[] } & Record<
      string,
      unknown
    >,
  };
}

export type Auth = "token" | "cert" | "none";

export function apiFetch(
  server: TestApiServer,
  path: string,
  auth: Auth = "token",
  signal?: AbortSignal,
): Promise<Response> {
  const tls = server.caPem
    ? { ca: server.caPem, ...(auth === "cert" ? { cert: server.clientCertPem, key: server.clientKeyPem } : {}) }
    : undefined;
  const headers: Record<string, string> = auth === "token" ? { authorization: `Bearer ${server.token}` } : {};
  return fetch(`${server.url}${path}`, { headers, tls, signal });
}

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: KubeObject;
  /** The line as received, without its newline. */
  raw: string;
}

/** Reads a watch response line by line. Every wait has a deadline: a stuck stream fails the test. */
export class WatchReader {
  private readonly chunks: AsyncIterator<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private buffered = "";
  private ended = false;
  /** A read that outlived a deadline: the next call must take its chunk, not start another read. */
  private pending: Promise<IteratorResult<Uint8Array>> | undefined;

  constructor(readonly response: Response) {
    this.chunks = response.body![Symbol.asyncIterator]();
  }

  static async open(server: TestApiServer, path: string, auth: Auth = "token"): Promise<WatchReader> {
    const response = await apiFetch(server, path, auth);
    if (response.status !== 200) throw new Error(`watch ${path}: HTTP ${response.status} ${await response.text()}`);
    return new WatchReader(response);
  }

  /** The next event, or undefined when the server ended the stream cleanly. */
  async next(timeoutMs = 5000): Promise<WatchEvent | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const newline = this.buffered.indexOf("\n");
      if (newline >= 0) {
        const raw = this.buffered.slice(0, newline);
        this.buffered = this.buffered.slice(newline + 1);
        const event = JSON.parse(raw) as Omit<WatchEvent, "raw">;
        return { ...event, raw };
      }
      if (this.ended) return undefined;
      const remaining = deadline - Date.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no watch event within ${timeoutMs} ms`)), Math.max(0, remaining));
      });
      try {
        this.pending ??= this.chunks.next();
        const { done, value } = await Promise.race([this.pending, timeout]);
        this.pending = undefined;
        if (done) this.ended = true;
        else this.buffered += this.decoder.decode(value, { stream: true });
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /** Events up to and including the first one `stop` accepts. */
  async until(stop: (event: WatchEvent) => boolean, timeoutMs = 5000): Promise<WatchEvent[]> {
    const deadline = Date.now() + timeoutMs;
    const events: WatchEvent[] = [];
    for (;;) {
      const event = await this.next(Math.max(1, deadline - Date.now()));
      if (!event) throw new Error(`watch ended before the expected event; got ${events.map((e) => e.type).join(",")}`);
      events.push(event);
      if (stop(event)) return events;
    }
  }

  /** Every remaining event until the server ends the stream. */
  async rest(timeoutMs = 5000): Promise<WatchEvent[]> {
    const deadline = Date.now() + timeoutMs;
    const events: WatchEvent[] = [];
    for (let event = await this.next(timeoutMs); event; event = await this.next(Math.max(1, deadline - Date.now())))
      events.push(event);
    return events;
  }

  async close(): Promise<void> {
    await this.chunks.return?.().catch(() => {});
  }
}

/** Resolves when `condition` holds, polling; throws after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}
