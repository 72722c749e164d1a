/**
 * A connection attempt that never settles: the NATS client's own deadline covers only the socket and the handshake,
 * and the sink reads its credential files before that. A FIFO without a writer (a secret a sidecar has not written
 * yet) blocks that read forever: the sink counts the attempt as failed after its own deadline and tries again.
 */
import { afterEach, expect, test } from "bun:test";
import { closeSync, constants, openSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { connect, nkeyAuthenticator, nkeys } from "@nats-io/transport-node";
import type { Envelope } from "../protocol/envelope.ts";
import { rawPod, tempDir, waitFor } from "../testing/index.ts";
import { createLogger } from "../host/logger.ts";
import { PREFIX, startNatsHost, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer } from "./nats-server.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Hands `text` to every read blocked on the FIFO (each open waits for a writer); none blocked: nothing to do. */
function feedFifo(path: string, text: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENXIO") return;
    throw error;
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

test(
  "an attempt blocked reading nkeySeedFile (a FIFO with no writer) fails after its deadline, and the next connects",
  async () => {
    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    const server = await startNatsServer({ auth: { nkey: user.getPublicKey() } });
    cleanups.push(() => server.destroy());
    const dir = await tempDir("kubemeta-nats-fifo-");
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const fifo = join(dir, "seed.fifo");
    const seedFile = join(dir, "user.nk");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    await symlink(fifo, seedFile);

    const lines: string[] = [];
    const th = await startNatsHost(server, {
      sink: { nkeySeedFile: seedFile, connectTimeout: "200ms" },
      logger: createLogger({ level: "info", write: (line) => void lines.push(line) }),
    });
    cleanups.push(() => th.destroy());
    // Run first (cleanups run last in, first out): the reads still blocked are let go before the host stops.
    cleanups.push(async () => feedFifo(fifo, seed));
    // 2 × 200 ms + 1 s: well within the wait.
    const given = await waitFor(
      () => lines.find((line) => line.includes("cannot connect to NATS; retrying")),
      10_000,
      "the blocked attempt to be given up",
    );
    expect(given).toContain("had not settled after 1400 ms (connectTimeout 200 ms)");
    expect(th.host.metrics.render()).toMatch(/kubemeta_nats_connect_failures_total\{sink="nats"\} [1-9]/);

    // The secret is written: the next attempt reads it. Synchronously, and the blocked reads let go at once: each
    // holds one of the two threads of Bun's file pool, so a second blocked attempt would leave none for fs/promises.
    const written = join(dir, "user.nk.new");
    writeFileSync(written, seed);
    renameSync(written, seedFile);
    feedFifo(fifo, seed);
    const nc = await connect({ servers: server.url, authenticator: nkeyAuthenticator(user.getSeed()) });
    cleanups.push(() => nc.close());
    const seen: Envelope[] = [];
    nc.subscribe(`${PREFIX}.all`, { callback: (_e, msg) => void seen.push(msg.json<Envelope>()) });
    await nc.flush();
    await th.changes.apply("pods", "ADDED", rawPod("web-1", { node: "n1" }));
    await th.changes.flush();
    await waitFor(() => seen.length === 1, 15_000, "the update published over the next attempt's connection");
    expect(seen[0]!.name).toBe("web-1");
  },
  SLOW_MS,
);
