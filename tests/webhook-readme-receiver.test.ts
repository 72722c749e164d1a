/**
 * README's receiver ("Verifying a request"), its code as written (its port a free one), against a real `main.ts`: it
 * takes what kubemeta signs, and refuses what another secret, a changed body or an old timestamp signs, and a
 * signature of as many characters that are more bytes.
 */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { sign } from "../plugins/sinks/webhook/sign.ts";
import { startTestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { freePort, metric } from "./cluster-checks.ts";
import { exitWithin, MAIN, Output } from "./reliability-process.ts";

const SECRET = "a-secret-of-the-readme-receiver";
const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function readmeReceiver(dir: string): Promise<string> {
  const readme = await Bun.file(join(import.meta.dir, "..", "README.md")).text();
  const section = readme.slice(readme.indexOf("### Verifying a request (receiver side)"));
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  expect(code).toContain("port: 8000,");
  const port = await freePort();
  const file = join(dir, "receiver.ts");
  await Bun.write(file, code!.replace("port: 8000,", `port: ${port}, hostname: "127.0.0.1",`));
  const child = Bun.spawn([process.execPath, file], {
    env: { ...process.env, WEBHOOK_SECRET: SECRET },
    stdout: "inherit",
    stderr: "inherit",
  });
  cleanups.push(() => child.kill("SIGKILL"));
  const url = `http://127.0.0.1:${port}/kubemeta`;
  await waitFor(
    async () => (await fetch(url, { method: "POST" }).catch(() => undefined))?.status === 401,
    10_000,
    "it",
  );
  return url;
}

test("README's receiver accepts every batch kubemeta sends, and refuses a request not signed so", async () => {
  const dir = await tempDir();
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const receiver = await readmeReceiver(dir);
  const api = await startTestApiServer();
  cleanups.push(() => api.stop());
  populate(api, { nodes: 2, podsPerNode: 5 });
  await api.writeKubeconfig(join(dir, "kubeconfig"), "token");
  const config = join(dir, "kubemeta.yaml");
  await Bun.write(
    config,
    [
      `store: { type: libsql, url: "file:${join(dir, "kubemeta.db")}" }`,
      `sources: [{ type: kubernetes, kubeconfig: "${join(dir, "kubeconfig")}" }]`,
      `sinks: [{ type: webhook, url: "${receiver}", secret: "${SECRET}", batch: { size: 4, linger: 20ms } }]`,
      "http: { address: 127.0.0.1, port: 0 }",
    ].join("\n"),
  );
  const child = Bun.spawn([process.execPath, MAIN, "--config", config], { stdout: "pipe", stderr: "pipe" });
  cleanups.push(() => child.kill("SIGKILL"));
  const stdout = new Output(child.stdout);
  const url = (await stdout.waitFor(/"msg":"http listening","url":"([^"]+)"/, 20_000))[1]!.replace(/\/$/, "");
  await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 15_000, "kubemeta to be ready");
  // The lag is 0 before the sink has read the log too: caught up is the lag 0 once something was delivered.
  const delivered = () => metric(url, "kubemeta_webhook_delivered_updates_total", { sink: "webhook" });
  const lag = () => metric(url, "kubemeta_sink_lag_versions", { sink: "webhook" });
  await waitFor(async () => (await delivered())! > 0 && (await lag()) === 0, 10_000, "every update delivered");
  expect(await metric(url, "kubemeta_webhook_deliveries_total", { sink: "webhook" })).toBeGreaterThan(3);
  expect(await metric(url, "kubemeta_webhook_failures_total", { sink: "webhook", reason: "status_4xx" })).toBe(0);
  child.kill("SIGTERM");
  expect(await exitWithin(child, 15_000)).toBe(0);

  const body = JSON.stringify({ id: "e:1-1", epoch: "e", first: 1, last: 1, updates: [] });
  const now = Math.floor(Date.now() / 1000);
  const post = (headers: Record<string, string>, sent = body) =>
    fetch(receiver, { method: "POST", body: sent, headers }).then((response) => response.status);
  const signed = (secret: string, at: number, signedBody = body) => ({
    "X-Kubemeta-Timestamp": String(at),
    "X-Kubemeta-Signature": sign(secret, at, signedBody),
  });
  expect(await post(signed(SECRET, now))).toBe(200);
  expect(await post(signed("another-secret", now))).toBe(401);
  expect(await post(signed(SECRET, now), body.replace('"e"', '"f"'))).toBe(401);
  expect(await post(signed(SECRET, now - 600))).toBe(401);
  expect(await post({ "X-Kubemeta-Signature": sign(SECRET, now, body) })).toBe(401);
  // As long as a true one in characters, longer in bytes: refused, not a 500 from timingSafeEqual's length check.
  const wide = { ...signed(SECRET, now), "X-Kubemeta-Signature": "é".repeat(sign(SECRET, now, body).length) };
  expect(await post(wide)).toBe(401);
}, 60_000);
