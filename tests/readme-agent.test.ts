/**
 * README's node agent over NATS ("Client library", "A node agent over NATS"), run as written against a kubemeta and a
 * real nats-server: its pods by IP stay right when an IP a pod released goes to a new pod whose updates come before the
 * old pod's last MODIFIED and DELETED, as after a relist (README, "The update envelope") or as the kubelet's status
 * writes may come.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { KubeObject } from "../sdk/model.ts";
import { rawPod, type TestHost, tempDir } from "../testing/index.ts";
import { CLUSTER, startNatsHost } from "./nats-fixtures.ts";
import { startNatsServer, type TestNatsServer } from "./nats-server.ts";
import { installCheckout, readmeBlock } from "./readme-setup.ts";
import { Output } from "./reliability-process.ts";

const AGENT = "A node agent over NATS, block 1 (ts)";
/** Appended to the agent: prints its pods by IP (IP → pod name) each time they change; SIGTERM still ends it. */
const SHOW = `
let shown = "";
setInterval(() => {
  const now = JSON.stringify(Object.fromEntries([...podsByIp].map(([ip, o]) => [ip, o.name])));
  if (now !== shown) console.log((shown = now));
}, 10).unref();
`;

/** A pod on node n1 at `ip`, made at `created` (seconds into the day). */
function pod(name: string, ip: string, created: number, more: Record<string, unknown> = {}): KubeObject {
  const raw = rawPod(name, { node: "n1" });
  const time = new Date(Date.UTC(2026, 11, 7, 0, 0, created)).toISOString().replace(".000", "");
  raw.metadata = { ...raw.metadata, creationTimestamp: time, ...more };
  raw.status = { ...(raw.status as object), podIP: ip };
  return raw;
}

let server: TestNatsServer;
let th: TestHost;
let dir: string;
beforeAll(async () => {
  server = await startNatsServer();
  th = await startNatsHost(server);
  dir = await tempDir("kubemeta-readme-agent-");
  await installCheckout(dir);
});
afterAll(async () => {
  await th?.destroy();
  await server?.destroy();
  await rm(dir, { recursive: true, force: true });
});

test("README's node agent keeps an IP a new pod took before the old pod's last MODIFIED and DELETED", async () => {
  const code = readmeBlock(AGENT)
    .replace("nats://nats.kubemeta:4222", server.url)
    .replace('cluster: "prod-eu"', `cluster: ${JSON.stringify(CLUSTER)}`);
  expect(code).toContain(server.url);
  expect(code).toContain(CLUSTER);
  await Bun.write(join(dir, "agent.ts"), `${code}${SHOW}`);
  const agent = Bun.spawn([process.execPath, join(dir, "agent.ts")], {
    cwd: dir,
    env: { ...process.env, NODE_NAME: "n1" },
    stdout: "pipe",
    stderr: "pipe",
  });
  try {
    const shown = new Output(agent.stdout);
    await shown.waitFor(/workloads known/, 10_000);
    const old = pod("web-1", "10.0.0.1", 10);
    th.changes.apply("pods", "ADDED", old);
    await shown.waitFor(/^\{"10\.0\.0\.1":"web-1"\}$/m, 10_000);
    // web-1 ends, its IP released and given to web-2, whose updates come first.
    th.changes.apply("pods", "ADDED", pod("web-2", "10.0.0.1", 20));
    th.changes.apply("pods", "MODIFIED", pod("web-1", "10.0.0.1", 10, { deletionTimestamp: "2026-12-07T00:00:30Z" }));
    th.changes.apply("pods", "DELETED", old);
    // A pod after them all: once it is shown, the agent has taken every update before it.
    th.changes.apply("pods", "ADDED", pod("web-3", "10.0.0.3", 40));
    await shown.waitFor(/"10\.0\.0\.3":"web-3"/, 10_000);
    expect(shown.text.trim().split("\n").at(-1)).toBe('{"10.0.0.1":"web-2","10.0.0.3":"web-3"}');
  } finally {
    agent.kill();
    await agent.exited;
  }
}, 30_000);
