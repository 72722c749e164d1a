/**
 * `bun run main.ts tail` as a user runs it, a subprocess against a real host: over SSE
 * (envelopes with --json, readable lines, filters, tokens, https with its own CA, a store
 * recreated under it), bad input, signals, and a reader that goes away (`| head`). Over NATS:
 * tests/tail-nats.test.ts.
 */
import { afterEach, expect, test } from "bun:test";
import type { Envelope } from "../protocol/envelope.ts";
import { testPki } from "../simulator/certs.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { rawNode, SLOW_MS } from "./nats-fixtures.ts";
import { MAIN } from "./reliability-process.ts";
import { commit, matching, trackedTail, updateLine } from "./tail-process.ts";

const TOKEN = "tail-test-token-0123456789";
/** What a terminal acts on rather than prints (C0 but the newline, DEL, C1). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are what is looked for
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function host(options: Parameters<typeof startTestHost>[0] = {}): Promise<TestHost> {
  const th = await startTestHost({ sinks: [{ type: "sse" }], ...options });
  cleanups.push(() => th.destroy());
  return th;
}

const tail = trackedTail(cleanups);

test(
  "--json over SSE: exactly the envelopes, RESET and SYNCED on stderr; SIGTERM exits 0",
  async () => {
    const th = await host();
    await commit(
      th,
      ["ADDED", rawNode("n1")],
      ["ADDED", rawPod("web-1", { node: "n1" })],
      ["ADDED", rawPod("web-2", { node: "n2" })],
    );
    const t = tail(["--url", th.url, "--stream", "node/n1", "--json"]);
    // stdout and stderr are two pipes: SYNCED on one may be read before the envelopes on the other.
    await t.until(() => /SYNCED +node\/n1/.test(t.stderr) && t.lines.length >= 2, "SYNCED and the snapshot");
    expect(t.stderr).toMatch(new RegExp(`^ +- RESET +node/n1  reason=no-resume-point  epoch=${th.host.epoch}$`, "m"));
    expect(
      t
        .envelopes()
        .map((e) => [e.type, e.kind, e.name, e.stream])
        .sort(),
    ).toEqual([
      ["ADDED", "Node", "n1", "node/n1"],
      ["ADDED", "Pod", "web-1", "node/n1"],
    ]);

    await commit(
      th,
      ["MODIFIED", rawPod("web-1", { node: "n1", phase: "Failed", rv: "2" })],
      ["DELETED", rawPod("web-1", { node: "n1", phase: "Failed", rv: "3" })],
    );
    await t.until(() => t.lines.length === 4, "the live updates");
    const page = (await (await fetch(`${th.url}/v1/updates?stream=node/n1`)).json()) as { items: Envelope[] };
    expect(t.envelopes().slice(2)).toEqual(page.items.slice(-2));
    expect(
      t
        .envelopes()
        .slice(2)
        .map((e) => e.type),
    ).toEqual(["MODIFIED", "DELETED"]);
    expect(await t.stop("SIGTERM")).toBe(0);
  },
  SLOW_MS,
);

test(
  "readable lines over SSE: two streams tagged, --kinds filtered by the server; SIGINT exits 0",
  async () => {
    const th = await host();
    await commit(
      th,
      ["ADDED", rawNode("n1")],
      ["ADDED", rawPod("web-1", { node: "n1", namespace: "payments" })],
      ["ADDED", rawPod("web-2", { node: "n2" })],
    );
    const t = tail(["--url", th.url, "--stream", "node/n1,all", "--kinds", "Pod"]);
    await t.until(() => matching(t.lines, /^ +3 SYNCED /).length === 2, "both streams SYNCED");
    expect(matching(t.lines, /^ +- RESET +(node\/n1|all) {2}reason=no-resume-point {2}epoch=\w+$/)).toHaveLength(2);
    expect(matching(t.lines, updateLine("ADDED", "Pod", "payments/web-1", "node=n1  [node/n1]"))).toHaveLength(1);
    expect(matching(t.lines, updateLine("ADDED", "Pod", "payments/web-1", "node=n1  [all]"))).toHaveLength(1);
    expect(matching(t.lines, updateLine("ADDED", "Pod", "default/web-2", "node=n2  [all]"))).toHaveLength(1);
    expect(t.lines.filter((line) => line.includes("Node"))).toEqual([]);
    expect(t.lines).toHaveLength(7);

    await commit(th, ["MODIFIED", rawPod("web-1", { node: "n1", namespace: "payments", phase: "Failed", rv: "2" })]);
    await t.until(
      () => matching(t.lines, / 4 MODIFIED Pod +payments\/web-1 +node=n1 +\[(node\/n1|all)\]$/).length === 2,
      "the MODIFIED on both streams",
    );
    expect(await t.stop("SIGINT")).toBe(0);
    expect(t.stderr).toBe("");
  },
  SLOW_MS,
);

test(
  "a token from --token or KUBEMETA_TOKEN; a wrong one is reported on stderr",
  async () => {
    const th = await host({ http: { tokens: [TOKEN] } });
    await commit(th, ["ADDED", rawPod("web-1", { node: "n1" })]);
    const byFlag = tail(["--url", th.url, "--token", TOKEN]);
    const byEnv = tail(["--url", th.url], { KUBEMETA_TOKEN: TOKEN });
    const wrong = tail(["--url", th.url], { KUBEMETA_TOKEN: "not-the-token-at-all" });
    for (const t of [byFlag, byEnv]) await t.until(() => matching(t.lines, /SYNCED +all/).length === 1, "SYNCED");
    await wrong.until(() => wrong.stderr.includes("401"), "the refusal on stderr");
    expect(wrong.stderr).toMatch(/^kubemeta tail: all: GET \/v1\/watch answered 401/m);
    expect(wrong.lines).toEqual([]);
    for (const t of [byFlag, byEnv, wrong]) expect(await t.stop("SIGTERM")).toBe(0);
  },
  SLOW_MS,
);

test(
  "https with its own CA through --ca",
  async () => {
    const pki = await testPki();
    const th = await host({ http: { tls: { cert: pki.serverCertFile, key: pki.serverKeyFile } } });
    await commit(th, ["ADDED", rawPod("web-1", { node: "n1" })]);
    const t = tail(["--url", th.url, "--ca", pki.caFile, "--json"]);
    await t.until(() => t.stderr.includes("SYNCED") && t.lines.length >= 1, "SYNCED and the snapshot");
    expect(t.envelopes().map((e) => e.name)).toEqual(["web-1"]);
    expect(await t.stop("SIGTERM")).toBe(0);
  },
  SLOW_MS,
);

test(
  "a recreated store: RESET naming the old epoch, deletes of what vanished, only true changes",
  async () => {
    const first = await host();
    await commit(
      first,
      ["ADDED", rawPod("web-1", { node: "n1" })],
      ["ADDED", rawPod("web-2", { node: "n1" })],
      ["ADDED", rawPod("web-4", { node: "n1", labels: { tier: "a" } })],
    );
    const readable = tail(["--url", first.url]);
    const json = tail(["--url", first.url, "--json"]);
    await readable.until(() => matching(readable.lines, /SYNCED +all/).length === 1, "SYNCED");
    await json.until(() => json.stderr.includes("SYNCED"), "SYNCED");
    const oldEpoch = first.host.epoch;

    // Held still until the new store has its state: a reconnect before its commits would see another reset.
    for (const t of [readable, json]) t.proc.kill("SIGSTOP");
    await first.stop();
    // The same address, a new store: the clients reconnect to another epoch.
    const second = await host({ http: { port: Number(new URL(first.url).port) } });
    expect(second.host.epoch).not.toBe(oldEpoch);
    await commit(
      second,
      ["ADDED", rawPod("web-2", { node: "n1" })],
      ["ADDED", rawPod("web-3", { node: "n1" })],
      ["ADDED", rawPod("web-4", { node: "n1", labels: { tier: "b" } })],
    );
    for (const t of [readable, json]) t.proc.kill("SIGCONT");

    await readable.until(() => matching(readable.lines, /SYNCED +all/).length === 2, "the second SYNCED");
    const afterReset = readable.lines.slice(readable.lines.findIndex((line) => line.includes(`was=${oldEpoch}`)));
    expect(afterReset[0]).toMatch(
      new RegExp(`^ +- RESET +all  reason=.+  epoch=${second.host.epoch}  was=${oldEpoch}$`),
    );
    // Deletes come before adds; web-2 is the same object in both stores: no line for it; web-4 changed.
    expect(afterReset.slice(1, -1)).toEqual([
      expect.stringMatching(updateLine("DELETED", "Pod", "default/web-1", "node=n1  (gone at reset)")),
      expect.stringMatching(updateLine("ADDED", "Pod", "default/web-3", "node=n1")),
      expect.stringMatching(updateLine("MODIFIED", "Pod", "default/web-4", "node=n1  (changed at reset)")),
    ]);

    await json.until(() => json.lines.length === 6, "the reset's envelopes");
    expect(
      json
        .envelopes()
        .slice(3)
        .map((e) => [e.type, e.name, e.epoch === oldEpoch])
        .sort(),
    ).toEqual([
      ["ADDED", "web-3", false],
      ["DELETED", "web-1", true],
      ["MODIFIED", "web-4", false],
    ]);
  },
  SLOW_MS,
);

test(
  "--idle-timeout: the silence after which a connection is made again, for a server whose heartbeat is longer",
  async () => {
    const th = await host({ sinks: [{ type: "sse", heartbeat: "1m" }] });
    await commit(th, ["ADDED", rawNode("n1")]);
    const t = tail(["--url", th.url, "--stream", "node/n1", "--idle-timeout", "1.5s"]);
    await t.until(() => t.stderr.includes("nothing received for 1500 ms; reconnecting"), "the silence cut");
    // Resumed from where it was: no second reset.
    await t.until(() => matching(t.lines, /SYNCED +node\/n1/).length === 2, "the second SYNCED");
    expect(matching(t.lines, /RESET/)).toHaveLength(1);
    expect(await t.stop("SIGTERM")).toBe(0);
  },
  SLOW_MS,
);

test(
  "bad input: one line on stderr, exit 2",
  async () => {
    const cases: [string[], RegExp, Record<string, string>?][] = [
      [["--url", "http://127.0.0.1:9", "--stream", "node/Not_A_Node"], /--stream: "node\/Not_A_Node" is not a stream/],
      [["--stream", "all"], /give one of --url .* or --nats/],
      [["--url", "http://127.0.0.1:9", "--bogus"], /'--bogus'/],
      [["--nats", "nats://127.0.0.1:9"], /--nats needs one of --cluster/],
      // An unset variable (`--cluster "$CLUSTER"`): no subject starts with `kubemeta.`, as no config names it so.
      [["--nats", "nats://127.0.0.1:9", "--cluster", ""], /--cluster: the cluster's name, not empty/],
      [["--nats", "nats://127.0.0.1:9", "--prefix", "_INBOX"], /--prefix: _INBOX is where NATS clients take their/],
      [
        ["--nats", "nats://127.0.0.1:9,http://n:4222", "--cluster", "c"],
        /--nats: "http:\/\/n:4222" is not a NATS server/,
      ],
      [
        ["--nats", "nats://a:secret-a@127.0.0.1:9,nats://b:secret-b@127.0.0.1:10", "--cluster", "c"],
        /--nats: the servers' URLs carry different credentials/,
      ],
      [["--url", "http://127.0.0.1:9", "--kinds", "pods"], /--kinds: expected API kinds/],
      [["--url", "http://127.0.0.1:9", "--kinds", "Configmap"], /--kinds: Configmap must be written ConfigMap/],
      // The other values it refuses: tests/tail-args.test.ts.
      [["--url", "http://127.0.0.1:9", "--idle-timeout", "45"], /--idle-timeout: expected a duration such as "500ms"/],
      [["--url", "http://127.0.0.1:9", "--idle-timeout", "0"], /--idle-timeout: must be more than 0 \(there is no/],
      [["--url", "http://127.0.0.1:9/kubemeta?token=secret-q"], /--url: .* has a query or fragment/],
      [["--url", "http://u:secret-u@127.0.0.1:9/kubemeta?token=secret-q"], /--url: .* has a query or fragment/],
      [["--url", "http://u:secret%ZZ@127.0.0.1:9"], /--url: its credentials before @ are not percent-encoded/],
      [["--url", "http://u:secret-u@127.0.0.1:99999"], /--url: not a URL with a host \(not quoted/],
      // A file that holds no certificate (a key, this test) is said at once, as the config says it of http.tls.cert.
      [["--url", "https://127.0.0.1:9", "--ca", import.meta.path], /--ca: .*tail\.test\.ts holds no PEM certificate/],
      // A token no Authorization header can carry, or none at all where one was given (`--token "$TOKEN"` unset).
      [["--url", "http://127.0.0.1:9", "--token", "secret with spaces"], /--token: a bearer token is printable ASCII/],
      [["--url", "http://127.0.0.1:9", "--token", ""], /--token: empty/],
      [["--nats", "nats://127.0.0.1:9", "--cluster", "c", "--token="], /--token: empty/],
      [
        ["--url", "http://127.0.0.1:9"],
        /\$KUBEMETA_TOKEN: a bearer token is printable ASCII/,
        { KUBEMETA_TOKEN: "secret\t1" },
      ],
    ];
    const results = await Promise.all(cases.map(([args, , env]) => tail(args, env).exit()));
    results.forEach(({ code, stderr }, i) => {
      expect({ args: cases[i]![0], code, stderr }).toMatchObject({ code: 2 });
      expect(stderr).toMatch(cases[i]![1]);
      expect(stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(stderr).not.toContain("secret");
    });
  },
  SLOW_MS,
);

test(
  "credentials in --url go as HTTP Basic auth (a token wins), never on stderr",
  async () => {
    const seen: (string | null)[] = [];
    // A proxy that asks for Basic auth and lets nothing through: what tail sends is all this test needs.
    const proxy = Bun.serve({
      port: 0,
      fetch(request) {
        seen.push(request.headers.get("authorization"));
        return new Response("no", { status: 401 });
      },
    });
    cleanups.push(async () => proxy.stop(true));
    const url = `http://us%C3%A9r:p%40ss-secret@127.0.0.1:${proxy.port}/kubemeta`;
    const basic = tail(["--url", url]);
    // The proxy sees the request before tail reads its answer: the 401 is waited for on stderr, not assumed there.
    await basic.until(() => seen.length > 0 && basic.stderr.includes("401"), "a request at the proxy, its 401 said");
    expect(seen[0]).toBe(`Basic ${Buffer.from("usér:p@ss-secret").toString("base64")}`);
    expect(await basic.stop("SIGTERM")).toBe(0);
    expect(basic.stderr).not.toContain("secret");

    seen.length = 0;
    const bearer = tail(["--url", url, "--token", TOKEN]);
    await bearer.until(() => seen.length > 0, "a request at the proxy");
    expect(seen[0]).toBe(`Bearer ${TOKEN}`);
    expect(await bearer.stop("SIGTERM")).toBe(0);
  },
  SLOW_MS,
);

/**
 * Kills a pipeline started `detached` (a process group of its own) with every process in it: a tail that did not end
 * when it should would outlive its shell.
 */
async function endGroup(pipeline: Bun.Subprocess): Promise<void> {
  try {
    process.kill(-pipeline.pid, "SIGKILL");
  } catch {
    // The group has ended.
  }
  await pipeline.exited;
}

/** `script` run by bash in a process group of its own, ended after the test; tail's BUN, MAIN (and URL) in its env. */
function spawnPipeline(script: string, url: string | undefined, stderr: "pipe" | "inherit" = "pipe") {
  const pipeline = Bun.spawn(["bash", "-c", script], {
    env: { ...process.env, BUN: process.execPath, MAIN, ...(url ? { URL: url } : {}) },
    stdout: "pipe",
    stderr,
    detached: true,
  });
  cleanups.push(() => endGroup(pipeline));
  return pipeline;
}

test(
  "a reader that goes away (| head) ends it quietly",
  async () => {
    const th = await host();
    await commit(th, ["ADDED", rawPod("web-0", { node: "n1" })]);
    const script = '"$BUN" run "$MAIN" tail --url "$URL" | head -n 1; echo "tail exited ${PIPESTATUS[0]}" >&2';
    const pipeline = spawnPipeline(script, th.url);
    let round = 0;
    // It notices on its next write: keep the stream moving until it has ended.
    await waitFor(
      async () => {
        await commit(th, ["ADDED", rawPod(`web-${++round}`, { node: "n1" })]);
        return pipeline.exitCode !== null;
      },
      15_000,
      "the pipeline to end",
    );
    expect(await new Response(pipeline.stdout).text()).toMatch(/^ +- RESET +all/);
    expect(await new Response(pipeline.stderr).text()).toBe("tail exited 0\n");
  },
  SLOW_MS,
);

test(
  "a reader that goes away (| head) ends it at once on a quiet stream, as tail -f, not at the next update",
  async () => {
    const th = await host();
    await commit(th, ["ADDED", rawPod("web-0", { node: "n1" })]);
    // RESET, the pod and SYNCED, then nothing: the stream stays quiet, so no write fails.
    const script =
      '"$BUN" run "$MAIN" tail --url "$URL" --stream node/n1 | head -n 1; echo "tail exited ${PIPESTATUS[0]}" >&2';
    const pipeline = spawnPipeline(script, th.url);
    await waitFor(() => pipeline.exitCode !== null, 10_000, "the pipeline to end");
    expect(await new Response(pipeline.stdout).text()).toMatch(/^ +- RESET +node\/n1/);
    expect(await new Response(pipeline.stderr).text()).toBe("tail exited 0\n");
  },
  SLOW_MS,
);

test(
  "a reader of its errors that goes away (2>&1 | head) ends it quietly too, while nothing else comes",
  async () => {
    // Port 9 refuses: tail only reports the failure and tries again, on stderr.
    const script =
      '"$BUN" run "$MAIN" tail --url http://127.0.0.1:9 2>&1 | head -n 1; echo "tail exited ${PIPESTATUS[0]}"';
    const pipeline = spawnPipeline(script, undefined, "inherit");
    // Its pipe says head has gone, before its next report (the retries are at most 5 s apart) would.
    await waitFor(() => pipeline.exitCode !== null, 15_000, "the pipeline to end");
    const lines = (await new Response(pipeline.stdout).text()).trimEnd().split("\n");
    expect(lines).toEqual([expect.stringMatching(/^kubemeta tail: all: /), "tail exited 0"]);
  },
  SLOW_MS,
);

test(
  "a name holding terminal control sequences (a Role's: Kubernetes takes any but / and %) is printed escaped",
  async () => {
    // Clears the screen, sets the window's title, and (C1 CSI) turns the text red: each a raw byte on a terminal.
    const name = "admin\u001b[2J\u001b]0;pwned\u0007\u009b31m\u007f";
    const th = await host({ extra: { slim: { kinds: { Role: {} } } } });
    const role = {
      kind: "Role",
      apiVersion: "rbac.authorization.k8s.io/v1",
      metadata: { name, namespace: "team-a", uid: "uid-role", resourceVersion: "1" },
    };
    await commit(th, ["ADDED", role]);
    const readable = tail(["--url", th.url]);
    const json = tail(["--url", th.url, "--json"]);
    await readable.until(() => matching(readable.lines, /SYNCED +all/).length === 1, "SYNCED");
    await json.until(() => json.stderr.includes("SYNCED") && json.lines.length === 1, "SYNCED and the Role");
    const escaped = "admin\\u001b[2J\\u001b]0;pwned\\u0007\\u009b31m\\u007f";
    expect(matching(readable.lines, /Role/)).toEqual([
      expect.stringMatching(updateLine("ADDED", "Role", `team-a/${escaped}`)),
    ]);
    // JSON escapes of the same characters: the envelope parses back to the name as it is.
    expect(json.envelopes().map((e) => e.name)).toEqual([name]);
    // No control character but the newlines reaches the terminal.
    for (const t of [readable, json]) expect(`${t.lines.join("\n")}\n${t.stderr}`).not.toMatch(CONTROL);
    for (const t of [readable, json]) expect(await t.stop("SIGTERM")).toBe(0);
  },
  SLOW_MS,
);
