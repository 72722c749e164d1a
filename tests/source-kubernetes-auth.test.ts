/**
 * The kubernetes source reaches a TLS API server with a user's kubeconfig as it is:
 * CA data, a bearer token or a client certificate (DESIGN.md, "Pitfalls": this is what
 * client-node's own requests cannot do under Bun).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import * as v from "valibot";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import type { Metrics } from "../sdk/telemetry.ts";
import kubernetes from "../plugins/sources/kubernetes.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";
import { count, inSync, RecordingSink, runSource, scratchDir, until, within } from "./source-kubernetes-recorder.ts";

let server: TestApiServer;
let scratch: Awaited<ReturnType<typeof scratchDir>>;

beforeAll(async () => {
  server = await startTestApiServer();
  populate(server, { nodes: 5, podsPerNode: 8 });
  scratch = await scratchDir();
});

afterAll(async () => {
  await server.stop();
  await scratch.remove();
});

/** The source's requests by their `code` label, summed over verbs and resources, as /metrics renders them. */
function requestsByCode(metrics: Metrics): Map<string, number> {
  const byCode = new Map<string, number>();
  for (const [, code, value] of metrics
    .render()
    .matchAll(/^kubemeta_source_requests_total\{.*code="([^"]*)".*\} (\S+)$/gm))
    byCode.set(code!, (byCode.get(code!) ?? 0) + Number(value));
  return byCode;
}

describe("authentication and TLS under Bun", () => {
  for (const auth of ["token", "cert"] as const) {
    test(`${auth} auth from a kubeconfig file with CA data syncs every resource`, async () => {
      const kubeconfig = join(scratch.dir, `${auth}.yaml`);
      await server.writeKubeconfig(kubeconfig, auth);
      const sink = new RecordingSink();
      const running = await runSource(sink, { kubeconfig });
      try {
        await within(running.synced, 5000, "sync");
        for (const kind of [
          "Pod",
          "Node",
          "Namespace",
          "Service",
          "EndpointSlice",
          "ReplicaSet",
          "Deployment",
          "DaemonSet",
          "Job",
          "CronJob",
        ]) {
          expect(inSync(sink, server, kind)).toBe(true);
        }
        expect(sink.violations).toEqual([]);
        expect(
          running.metrics
            .counter("kubemeta_source_requests_total", "")
            .get({ verb: "watch", resource: "pods", code: "200" }),
        ).toBeGreaterThanOrEqual(1);
      } finally {
        await running.stop();
      }
    });
  }

  test(
    "a plain http:// server (kubectl proxy, --demo) " + "works with a token and no insecure-skip-tls-verify",
    async () => {
      const plain = await startTestApiServer({ tls: false });
      try {
        populate(plain, { nodes: 2, podsPerNode: 3 });
        const kubeconfig = join(scratch.dir, "plain.yaml");
        // As `kubectl proxy` users write it: kubectl needs no insecure-skip-tls-verify for http://.
        await writeFile(kubeconfig, plain.kubeconfig("token").replace(/\n\s*insecure-skip-tls-verify: true/, ""));
        const sink = new RecordingSink();
        const running = await runSource(sink, { kubeconfig, resources: ["pods"] });
        try {
          await within(running.synced, 5000, "sync over plain HTTP");
          expect(inSync(sink, plain, "Pod")).toBe(true);
        } finally {
          await running.stop();
        }
      } finally {
        await plain.stop();
      }
    },
  );

  test("Bun quirk: client-node's own requests drop the kubeconfig's CA, the source's do not", async () => {
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig("token"));
    const error = await kc
      .makeApiClient(CoreV1Api)
      .listNamespace()
      .then(
        () => undefined,
        (err: unknown) => err as Error,
      );
    // If this starts passing, Bun honours undici's Agent and transport.ts could use client-node's fetch.
    expect(String(error?.message ?? error)).toMatch(/certificate|UNABLE_TO_VERIFY|self.signed/i);
  });

  test("a rotated token file is read again after a 401", async () => {
    const tokenFile = join(scratch.dir, "token");
    await writeFile(tokenFile, "not-the-token");
    const kubeconfig = join(scratch.dir, "token-file.yaml");
    await writeFile(kubeconfig, server.kubeconfig("token").replace(/token: .*/, `token-file: ${tokenFile}`));
    const sink = new RecordingSink();
    const running = await runSource(sink, { kubeconfig, resources: ["pods"] });
    const requests = running.metrics.counter("kubemeta_source_requests_total", "");
    try {
      await until(() => requests.get({ verb: "watch", resource: "pods", code: "401" }) >= 1, "a 401");
      expect(running.isSynced()).toBe(false);
      await writeFile(tokenFile, server.token);
      await within(running.synced, 5000, "sync after the token rotated");
      expect(inSync(sink, server, "Pod")).toBe(true);
    } finally {
      await running.stop();
    }
  });

  test("kubectl's tokenFile (client-node reads only token-file): the context's user's, relative, trimmed", async () => {
    const dir = join(scratch.dir, "token-file-key");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "token"), `${server.token}\n`);
    const kubeconfig = join(dir, "kubeconfig.yaml");
    // Another user's token file, long gone, is none of this context's business (client-go never reads it).
    const stale = "- name: stale\n  user:\n    tokenFile: /nonexistent/token\n";
    await writeFile(kubeconfig, `${server.kubeconfig("token").replace(/token: .*/, "tokenFile: token")}${stale}`);
    const sink = new RecordingSink();
    const running = await runSource(sink, { kubeconfig, resources: ["pods"] });
    try {
      await within(running.synced, 5000, "sync with the token from tokenFile");
      expect(inSync(sink, server, "Pod")).toBe(true);
    } finally {
      await running.stop();
    }
  });

  test("an exec credential plugin that fails: no request leaves, each one counted credentials; why said", async () => {
    const kubeconfig = join(scratch.dir, "exec.yaml");
    const exec = [
      "exec:",
      "      apiVersion: client.authentication.k8s.io/v1",
      "      command: /nonexistent/credential-helper",
      "      interactiveMode: Never",
    ].join("\n");
    await writeFile(kubeconfig, server.kubeconfig("token").replace(/token: .*/, exec));
    const running = await runSource(new RecordingSink(), { kubeconfig, resources: ["pods"] });
    try {
      await until(
        () =>
          count(running.metrics, "kubemeta_source_watch_restarts_total", { resource: "pods", reason: "error" }) >= 2,
        "two attempts that failed",
      );
      // Each attempt, for an alert on `code!~"2.."`: not an HTTP status nor `error`, the API server's silence.
      const requests = requestsByCode(running.metrics);
      expect([...requests.keys()]).toEqual(["credentials"]);
      expect(requests.get("credentials")).toBeGreaterThanOrEqual(2);
      expect(running.waiting()).toMatch(/credential-helper|ENOENT/);
    } finally {
      await running.stop();
    }
  });

  test("an exec credential plugin that does not exit: said and counted, not as the API server's silence", async () => {
    const kubeconfig = join(scratch.dir, "exec-hung.yaml");
    const plugin = join(scratch.dir, "hung-credential-helper");
    await writeFile(plugin, "#!/bin/sh\nsleep 5\n", { mode: 0o755 });
    const exec = [
      "exec:",
      "      apiVersion: client.authentication.k8s.io/v1",
      `      command: ${plugin}`,
      "      interactiveMode: Never",
    ].join("\n");
    await writeFile(kubeconfig, server.kubeconfig("token").replace(/token: .*/, exec));
    const running = await runSource(new RecordingSink(), {
      kubeconfig,
      resources: ["pods"],
      inactivityTimeout: "200ms",
    });
    try {
      await until(() => running.waiting() !== undefined && !/not synced yet/.test(running.waiting()!), "a reason");
      expect(running.waiting()).toBe(
        `pods: list/watch failing, retrying: no credentials: the kubeconfig's exec plugin ${plugin} has not exited`,
      );
      expect([...requestsByCode(running.metrics).keys()]).toEqual(["credentials"]);
    } finally {
      await running.stop();
    }
  });

  test("a bad kubeconfig path fails start() with a clear error", async () => {
    const missing = join(scratch.dir, "nope.yaml");
    const started = runSource(new RecordingSink(), { kubeconfig: missing });
    await expect(started).rejects.toThrow(`cannot load kubeconfig ${missing}`);
    await expect(started).rejects.toThrow(/ENOENT|no such file/);
  });

  test("start and stop are safe twice, and stop without start", async () => {
    const kubeconfig = join(scratch.dir, "twice.yaml");
    await server.writeKubeconfig(kubeconfig, "token");
    const source = kubernetes.create(v.parse(kubernetes.schema, { kubeconfig, resources: ["pods"] }), {
      name: "kubernetes",
      cluster: "test",
      logger: silentLogger,
      metrics: createMetrics(),
      changes: new RecordingSink(),
      synced() {},
      waiting() {},
    });
    await source.stop();
    await source.start();
    await source.start();
    await until(() => server.openWatches() === 1, "one watch");
    await source.stop();
    await source.stop();
    await until(() => server.openWatches() === 0, "the watch to be closed");
  });
});
