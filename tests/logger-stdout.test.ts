/**
 * kubemeta's log on a stdout whose reader goes away (`kubemeta … | head -1`): the log calls do not fail, nor end up
 * as Bun's unhandled error (a stack on stderr, or an unhandled rejection once guardProcess listens); it goes on
 * serving, says so once on stderr, and exits 0 at SIGTERM (README "Health, metrics, logs").
 */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { freePort } from "./cluster-checks.ts";
import { exitWithin, MAIN, Output } from "./reliability-process.ts";

let dir: string | undefined;
let server: TestApiServer | undefined;
let child: ReturnType<typeof Bun.spawn> | undefined;
afterAll(async () => {
  child?.kill("SIGKILL");
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const STDERR = "kubemeta: stdout: its reader is gone; kubemeta goes on without writing its log there\n";

// Gone while it starts (before guardProcess listens, Bun's stack on stderr was the symptom) or once it runs (Bun's
// unhandled rejection, counted and logged to nowhere).
test.each([["while it starts"], ["once it runs"]])(
  "stdout's reader gone %s: no unhandled error, serving, exit 0",
  async (when) => {
    dir = await tempDir("kubemeta-stdout-");
    server = await startTestApiServer();
    await server.writeKubeconfig(join(dir, "kubeconfig"), "token");
    const port = await freePort();
    await Bun.write(
      join(dir, "kubemeta.yaml"),
      [
        `http: { address: 127.0.0.1, port: ${port} }`,
        "store: { type: libsql, url: file:./data/kubemeta.db }",
        `sources: [{ type: kubernetes, kubeconfig: ${join(dir, "kubeconfig")}, resources: [namespaces] }]`,
      ].join("\n"),
    );
    const proc = Bun.spawn([process.execPath, "run", MAIN, "--config", "kubemeta.yaml"], {
      cwd: dir,
      stdout: "pipe",
      stderr: "pipe",
    });
    child = proc;
    const stderr = new Output(proc.stderr);
    const reader = proc.stdout.getReader();
    const url = `http://127.0.0.1:${port}/`;
    const ready = () =>
      waitFor(async () => (await fetch(`${url}readyz`).catch(() => undefined))?.status === 200, 30_000, "ready");
    if (when === "while it starts") {
      // As `| head -1`: the reader takes what came first and closes its end.
      expect((await reader.read()).done).toBe(false);
      await reader.cancel();
      await ready();
    } else {
      const reading = (async () => {
        while (!(await reader.read()).done);
      })();
      await ready();
      await reader.cancel();
      await reading;
    }

    // A line once running (guardProcess listening): a failed watch is a warning.
    const watches = () => server!.requests()["watch namespaces"] ?? 0;
    const before = watches();
    server.failNext({ verb: "watch", status: 500, count: 1 });
    server.dropWatches();
    await waitFor(() => watches() >= before + 2, 20_000, "a failed watch, then another");
    const metrics = await (await fetch(`${url}metrics`)).text();
    expect(metrics).toContain('kubemeta_unhandled_errors_total{type="exception"} 0');
    expect(metrics).toContain('kubemeta_unhandled_errors_total{type="rejection"} 0');
    expect((await fetch(`${url}readyz`)).status).toBe(200);

    proc.kill("SIGTERM");
    expect(await exitWithin(proc, 20_000)).toBe(0);
    expect(await stderr.all()).toBe(STDERR);
    await server.stop();
    server = undefined;
  },
);
