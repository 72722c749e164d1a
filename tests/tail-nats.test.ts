/**
 * `bun run main.ts tail --nats` as a user runs it, a subprocess against a real host with a NATS sink and a real
 * nats-server: tokens, credentials in the server URL, TLS with its own CA, a restart, a server that never answers, and
 * a user the server refuses the stream's subscription.
 * (Over SSE, bad input, signals and readers that go away: tests/tail.test.ts.)
 */
import { afterEach, expect, test } from "bun:test";
import { testPki } from "../simulator/certs.ts";
import { rawPod } from "../testing/index.ts";
import { CLUSTER, nodeNames, PREFIX, rawNode, SLOW_MS, startNatsHost } from "./nats-fixtures.ts";
import { type NatsServerOptions, startNatsServer } from "./nats-server.ts";
import { commit, matching, trackedTail, updateLine } from "./tail-process.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const tail = trackedTail(cleanups);

/** A nats-server started with `server`, and a host whose NATS sink has `sink`: both stopped after the test. */
async function serverAndHost(server: NatsServerOptions = {}, sink?: Record<string, unknown>) {
  const nats = await startNatsServer(server);
  cleanups.push(() => nats.destroy());
  const th = await startNatsHost(nats, { sink });
  cleanups.push(() => th.destroy());
  return { server: nats, th };
}

test(
  "over NATS with a token: lines arrive, --kinds filters locally; a wrong token exits 1",
  async () => {
    const natsToken = "nats-tail-token";
    const { server, th } = await serverAndHost({ auth: { token: natsToken } }, { token: natsToken });
    const [node, other] = nodeNames(2) as [string, string];
    await commit(
      th,
      ["ADDED", rawNode(node)],
      ["ADDED", rawPod("web-1", { node })],
      ["ADDED", rawPod("web-2", { node: other })],
    );

    const t = tail(["--nats", server.url, "--cluster", CLUSTER, "--stream", `node/${node}`, "--kinds", "Pod"], {
      KUBEMETA_TOKEN: natsToken,
    });
    await t.until(() => matching(t.lines, /SYNCED +node\//).length === 1, "SYNCED", 20_000);
    expect(matching(t.lines, updateLine("ADDED", "Pod", "default/web-1", `node=${node}`))).toHaveLength(1);
    expect(t.lines.filter((line) => line.includes("Node") || line.includes("web-2"))).toEqual([]);

    await commit(
      th,
      ["MODIFIED", rawNode(node, "False")],
      ["MODIFIED", rawPod("web-1", { node, phase: "Failed", rv: "2" })],
    );
    await t.until(
      () => matching(t.lines, updateLine("MODIFIED", "Pod", "default/web-1", `node=${node}`)).length === 1,
      "the live MODIFIED",
    );
    expect(t.lines.filter((line) => line.includes("Node"))).toEqual([]);

    // A NATS restart is said on stderr, and the tail goes on.
    await server.restart();
    await t.until(() => /NATS: reconnected/.test(t.stderr), "the reconnect", 20_000);
    expect(t.stderr).toMatch(/^kubemeta tail: NATS: disconnected from .+; reconnecting$/m);
    await commit(th, ["ADDED", rawPod("web-3", { node })]);
    await t.until(
      () => matching(t.lines, updateLine("ADDED", "Pod", "default/web-3", `node=${node}`)).length === 1,
      "an update after the restart",
      20_000,
    );
    const before = t.stderr;
    expect(await t.stop("SIGINT")).toBe(0);
    expect(t.stderr).toBe(before);

    const refused = tail(["--nats", server.url, "--cluster", CLUSTER, "--token", "wrong"]);
    const { code, stderr } = await refused.exit();
    expect(code).toBe(1);
    expect(stderr).toMatch(/^kubemeta tail: cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: .*authorization/im);
  },
  SLOW_MS,
);

test("Ctrl-C or SIGTERM while a first NATS connection hangs (a silent server) exits 0 at once", async () => {
  let accepted = 0;
  const silent = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: { open: () => void accepted++, data() {} },
  });
  cleanups.push(async () => silent.stop(true));
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const t = tail(["--nats", `nats://127.0.0.1:${silent.port}`, "--cluster", CLUSTER]);
    const before = accepted;
    await t.until(() => accepted > before, "the connection to the silent server");
    expect(await t.stop(signal)).toBe(0);
    expect(t.stderr).toBe("");
  }
});

test(
  "over NATS with the credentials in the server URL, as other NATS clients take them",
  async () => {
    const password = "tail pa:ss@1";
    const { server, th } = await serverAndHost({ auth: { user: "tail", password } }, { user: "tail", password });
    await commit(th, ["ADDED", rawPod("web-1", { node: "n1" })]);
    const url = server.url.replace("nats://", `nats://tail:${encodeURIComponent(password)}@`);
    const t = tail(["--nats", url, "--cluster", CLUSTER]);
    await t.until(
      () => matching(t.lines, updateLine("ADDED", "Pod", "default/web-1", "node=n1")).length === 1,
      "the pod",
      20_000,
    );
    expect(await t.stop("SIGTERM")).toBe(0);
    expect(t.stderr).toBe("");
  },
  SLOW_MS,
);

test(
  "NATS over TLS with its own CA through --ca",
  async () => {
    const pki = await testPki();
    const { server, th } = await serverAndHost(
      { tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile } },
      { tls: { caFile: pki.caFile } },
    );
    await commit(th, ["ADDED", rawPod("web-1", { node: "n1" })]);
    const t = tail(["--nats", server.url, "--cluster", CLUSTER, "--ca", pki.caFile]);
    await t.until(
      () => matching(t.lines, updateLine("ADDED", "Pod", "default/web-1", "node=n1")).length === 1,
      "the pod",
      20_000,
    );
    expect(await t.stop("SIGTERM")).toBe(0);
  },
  SLOW_MS,
);

test(
  "over NATS as a user who may not subscribe to the stream: the refusal on stderr at each try, the stream once granted",
  async () => {
    const auth = { user: "tail", password: "tail-pa55" };
    const denied = { ...auth, subscribeDeny: [`${PREFIX}.all`] };
    const { server, th } = await serverAndHost({ auth: denied }, auth);
    await commit(th, ["ADDED", rawPod("web-1", { node: "n1" })]);
    const t = tail(["--nats", server.url.replace("nats://", `nats://tail:${auth.password}@`), "--cluster", CLUSTER]);
    const refusals = () =>
      matching(
        t.stderr.split("\n"),
        /^kubemeta tail: all: the NATS server refused the subscription to \S+\.all: .+; subscribing again in \d+ ms$/,
      ).length;
    await t.until(() => refusals() >= 2, "the refusal, said at each try", 20_000);
    // Replays still bring the stream's state: only live updates are refused.
    expect(matching(t.lines, updateLine("ADDED", "Pod", "default/web-1", "node=n1"))).toHaveLength(1);

    await commit(th, ["ADDED", rawPod("web-2", { node: "n1" })]);
    await server.reload({ auth });
    await commit(th, ["ADDED", rawPod("web-3", { node: "n1" })]);
    for (const name of ["web-2", "web-3"])
      await t.until(
        () => matching(t.lines, updateLine("ADDED", "Pod", `default/${name}`, "node=n1")).length === 1,
        `${name}, once the subscription is granted`,
        20_000,
      );
    expect(await t.stop("SIGTERM")).toBe(0);
  },
  SLOW_MS,
);

test(
  "over NATS as a user who may not publish replay requests: the refusal on stderr at each try, the stream once granted",
  async () => {
    const auth = { user: "tail", password: "tail-pa55" };
    const replay = `${PREFIX}.replay`;
    const { server, th } = await serverAndHost({ auth: { ...auth, publishDeny: [replay] } }, auth);
    await commit(th, ["ADDED", rawPod("web-1", { node: "n1" })]);
    const t = tail(["--nats", server.url.replace("nats://", `nats://tail:${auth.password}@`), "--cluster", CLUSTER]);
    const said = `kubemeta tail: all: the NATS server refused publishing to ${replay} (permissions): `;
    const refusal = `${said}Permissions Violation for Publish to "${replay}"; asking again`;
    // Before any replay's silence (5 s) is told: that was all it said.
    await t.until(() => t.stderr.split(refusal).length > 2, "the refusal, said at each try", 20_000);
    expect(t.stderr.split("\n").filter((line) => line !== "" && line !== refusal)).toEqual([]);

    await server.reload({ auth });
    await t.until(
      () => matching(t.lines, updateLine("ADDED", "Pod", "default/web-1", "node=n1")).length === 1,
      "the stream, once publishing is granted",
      20_000,
    );
    expect(await t.stop("SIGTERM")).toBe(0);
  },
  SLOW_MS,
);

test(
  "over NATS with a cluster no kubemeta publishes for (a typo): stderr names the replay subject nobody answers",
  async () => {
    const { server } = await serverAndHost(); // a kubemeta publishing under its own prefix
    const t = tail(["--nats", server.url, "--cluster", "test.eu-west-2"]);
    const said = /^kubemeta tail: all: no responders on kubemeta\.test_eu-west-2\.replay: .+ under another prefix/m;
    await t.until(() => said.test(t.stderr), "the subject nobody answers, named", 20_000);
    expect(await t.stop("SIGTERM")).toBe(0);
  },
  SLOW_MS,
);
