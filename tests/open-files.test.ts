/**
 * kubemeta under a low open-file limit (`ulimit -n`, a unit's LimitNOFILE) with more SSE subscribers than it has
 * descriptors for. Once every descriptor is taken, Bun's listener spins on accept's EMFILE and answers nobody, probes
 * included, logging nothing; the sse sink keeps streams under what the limit leaves (README "Limits").
 */
import { afterEach, expect, test } from "bun:test";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { makePod } from "../simulator/population.ts";
import { INTERVAL_MS } from "../host/open-files.ts";
import { OTHER_FILES } from "../plugins/sinks/sse/open-files.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { exitWithin, MAIN, Output } from "./reliability-process.ts";
import { type RawExchange, rawRequest } from "./security-raw.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** `command` under `prlimit --nofile=<soft>:<hard>`, its stdout read as it comes. */
function limited(nofile: string, command: string[]) {
  const child = Bun.spawn(["prlimit", `--nofile=${nofile}`, ...command], { stdout: "pipe", stderr: "pipe" });
  cleanups.push(async () => {
    child.kill("SIGKILL");
    await child.exited;
  });
  return { child, stdout: new Output(child.stdout), stderr: new Output(child.stderr) };
}

test("Bun quirk: Bun raises its soft open-file limit to the hard one as it starts", async () => {
  const script = `process.stdout.write(require("fs").readFileSync("/proc/self/limits", "utf8"))`;
  const { stdout } = limited("64:256", [process.execPath, "-e", script]);
  const limits = /^Max open files\s+(\d+)\s+(\d+)/m.exec(await stdout.all());
  expect(limits?.slice(1)).toEqual(["256", "256"]);
});

/** kubemeta with the sse sink's defaults but per client, on a `file:` store, against `api`, under `nofile`. */
async function kubemeta(api: TestApiServer, nofile: number) {
  const dir = await tempDir();
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, "kubeconfig");
  await api.writeKubeconfig(kubeconfig, "token");
  const config = join(dir, "kubemeta.yaml");
  await writeFile(
    config,
    [
      `store: { type: libsql, url: "file:${join(dir, "kubemeta.db")}" }`,
      `sources: [{ type: kubernetes, kubeconfig: ${kubeconfig}, resources: [pods, nodes] }]`,
      // Every test client has one address: let the limit under test be the open-file one.
      "sinks: [{ type: sse, maxStreamsPerClient: 1000 }]",
      "http: { address: 127.0.0.1, port: 0 }",
    ].join("\n"),
  );
  const run = limited(`${nofile}:${nofile}`, [process.execPath, "run", MAIN, "--config", config]);
  const listening = await run.stdout.waitFor(/^\{.*"msg":"http listening".*\}$/m, 10_000);
  const url = (JSON.parse(listening[0]) as { url: string }).url.replace(/\/$/, "");
  await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 10_000, "kubemeta ready");
  return { ...run, url };
}

test("more streams than the open-file limit has room for: a 503, its connection closed; probes answer", async () => {
  const api = await startTestApiServer({ tls: false });
  cleanups.push(() => api.stop());
  const limit = OTHER_FILES + 64;
  const { child, stdout, url } = await kubemeta(api, limit);
  const warning = `the open-file limit (${limit}) leaves room for 64 streams, fewer than maxStreams (1000)`;
  await waitFor(() => stdout.text.includes(warning), 5000, "the warning");

  const streams: RawExchange[] = [];
  cleanups.push(async () => {
    for (const s of streams) s.close();
  });
  for (let i = 0; i < 200; i++) {
    streams.push(await rawRequest(url, "GET /v1/watch?stream=all HTTP/1.1\r\nAccept: application/json"));
  }
  const statuses = await Promise.all(streams.map((s) => s.status()));
  expect(statuses.filter((s) => s === 200).length).toBe(64);
  expect(statuses.filter((s) => s === 503).length).toBe(136);
  const refused = streams.filter((_, i) => statuses[i] === 503);
  expect(refused[0]!.text()).toContain(`the open-file limit, ${limit}, leaves room for 64; maxStreams is 1000`);
  await waitFor(() => refused.every((s) => s.ended()), 5000, "the refused connections closed");

  const probe = (path: string) => fetch(`${url}${path}`, { signal: AbortSignal.timeout(3000) });
  expect((await probe("/healthz")).status).toBe(200);
  expect((await probe("/readyz")).status).toBe(200);
  api.create(makePod({ name: "while-full", namespace: "default", node: "n-1" }));
  const served = streams.filter((_, i) => statuses[i] === 200);
  await waitFor(() => served.every((s) => s.text().includes("while-full")), 5000, "the new pod on every stream");

  for (const s of served) s.close();
  const again = await waitFor(
    async () => {
      const s = await rawRequest(url, "GET /v1/watch?stream=all HTTP/1.1\r\nAccept: application/json");
      streams.push(s);
      return (await s.status()) === 200;
    },
    5000,
    "a stream once the others closed",
  );
  expect(again).toBe(true);
  child.kill("SIGTERM");
  expect(await exitWithin(child, 10_000)).toBe(0);
  expect(stdout.text).not.toContain('"level":"error"');
});

test("out of open files by plain connections: said once while it lasts, once when over; then all answers", async () => {
  const api = await startTestApiServer({ tls: false });
  cleanups.push(() => api.stop());
  const limit = 192;
  const { stdout, url } = await kubemeta(api, limit);
  // Idle keep-alive clients, each answered once: not streams, so nothing caps them.
  const clients: RawExchange[] = [];
  cleanups.push(async () => {
    for (const c of clients) c.close();
  });
  for (let i = 0; i < 200; i++) clients.push(await rawRequest(url, "GET /healthz HTTP/1.1"));
  await stdout.waitFor(/"msg":"out of open files \(EMFILE\): no new connection is answered.*"limit":192/, 10_000);
  // The Bun quirk it says: the listener answers nobody, a probe on a new connection included.
  const probe = await rawRequest(url, "GET /healthz HTTP/1.1");
  clients.push(probe);
  expect(await waitFor(() => probe.text(), 1000, "an answer").catch(() => "none")).toBe("none");
  // Two more looks while it lasts: not one more line.
  await Bun.sleep(2 * INTERVAL_MS);
  for (const c of clients) c.close();
  await stdout.waitFor(/"msg":"open files below the limit again"/, 10_000);
  expect(stdout.lines("open files below the limit again")).toHaveLength(1);
  expect(stdout.text.match(/out of open files/g)).toHaveLength(1);
  const metrics = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
  expect(metrics).toContain(`kubemeta_open_files_limit ${limit}`);
  expect(Number(/^kubemeta_open_files (\d+)$/m.exec(metrics)?.[1])).toBeLessThan(limit - 16);
});

test("Bun quirk: a fetch with no descriptor for its socket blames the URL; errorText says the file limit", async () => {
  // The first fetch starts Bun's HTTP thread, which a process with no descriptor left cannot (Bun exits); its
  // connection stays pooled, so none is freed before the second. By name (localhost), Bun says ECONNREFUSED instead.
  const script = `
    import { closeSync, openSync } from "node:fs";
    import { errorText } from ${JSON.stringify(join(import.meta.dir, "..", "protocol", "error-text.ts"))};
    const [warm, other] = [0, 1].map(() => Bun.serve({ port: 0, fetch: () => new Response("ok") }));
    const url = (server) => \`http://127.0.0.1:\${server.port}/\`;
    await (await fetch(url(warm))).text();
    const held = [];
    try { for (;;) held.push(openSync("/dev/null", "r")); } catch {}
    const error = await fetch(url(other)).then(() => ({}), (e) => e);
    for (const fd of held) closeSync(fd);
    process.stdout.write(JSON.stringify({ message: error.message, said: errorText(error) }));
    process.exit(0);`;
  const dir = await tempDir();
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "fetch.ts"), script);
  const { stdout } = limited("64:64", [process.execPath, join(dir, "fetch.ts")]);
  expect(JSON.parse(await stdout.all())).toEqual({
    message: "EMFILE: Was there a typo in the url or port?",
    said: "EMFILE: too many open files: the process's open-file limit is reached",
  });
});
