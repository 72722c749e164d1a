/** The kubernetes source's pieces that need no API server: config, lines, budget, kubeconfig loading. */
import { describe, expect, test } from "bun:test";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import kubernetes from "../plugins/sources/kubernetes.ts";
import { createRequestBudget } from "../plugins/sources/kubernetes/budget.ts";
import { LineSplitter, linesOf } from "../plugins/sources/kubernetes/lines.ts";
import { unlessStopped } from "../plugins/sources/kubernetes/request.ts";
import { InactivityError } from "../plugins/sources/kubernetes/inactivity.ts";
import { collectionPath, resourceType, resumeKey } from "../plugins/sources/kubernetes/resources.ts";
import { testPki } from "../simulator/certs.ts";
import { loadKubeConfig } from "../kube/load.ts";
import { fetchOptions } from "../kube/transport.ts";
import { withEnv } from "./kubeconfig-fixtures.ts";

const tempDir = () => mkdtemp(join(tmpdir(), "kubemeta-kubeconfig-"));

describe("config", () => {
  test("defaults are the documented ones", () => {
    const config = v.parse(kubernetes.schema, {});
    expect(config.resources).toEqual([
      "pods",
      "nodes",
      "namespaces",
      "services",
      "endpointslices",
      "replicasets",
      "deployments",
      "statefulsets",
      "daemonsets",
      "jobs",
      "cronjobs",
    ]);
    expect(config.pageSize).toBe(500);
    expect(config.streamingList).toBe("auto");
    expect(config.watchTimeout).toBe(300_000);
    expect(config.inactivityTimeout).toBe(90_000);
    expect(config.requestBudget).toEqual({ qps: 5, burst: 20 });
    expect(config.backoff).toEqual({ initial: 500, max: 30_000 });
    expect(v.is(kubernetes.schema, kubernetes.example)).toBe(true);
  });

  test("an unknown resource names the valid ones", () => {
    const result = v.safeParse(kubernetes.schema, { resources: ["pods", "secrets"] });
    expect(result.success).toBe(false);
    const issue = result.issues![0]!;
    expect(v.getDotPath(issue)).toBe("resources.1");
    expect(issue.message).toContain('"secrets"');
    expect(issue.message).toContain("pods, nodes, namespaces");
  });

  test("unknown keys and bad durations are rejected", () => {
    expect(v.safeParse(kubernetes.schema, { resource: ["pods"] }).success).toBe(false);
    expect(v.safeParse(kubernetes.schema, { watchTimeout: "soon" }).success).toBe(false);
    expect(v.safeParse(kubernetes.schema, { requestBudget: { qps: 0 } }).success).toBe(false);
  });

  test("a pageSize the API server cannot read as a limit is refused (each LIST would be its 400)", () => {
    // Was: accepted by --check, then `400 BadRequest: limit: strconv.ParseInt: parsing "1e+21"` at every list.
    for (const pageSize of [1e21, 1e20, Number.MAX_SAFE_INTEGER + 1]) {
      const result = v.safeParse(kubernetes.schema, { pageSize });
      expect(result.success).toBe(false);
      expect(v.getDotPath(result.issues![0]!)).toBe("pageSize");
      expect(result.issues![0]!.message).toBe(
        "must be at most 9007199254740991: the API server reads the page size as a whole number",
      );
    }
    expect(v.parse(kubernetes.schema, { pageSize: 10_000 }).pageSize).toBe(10_000);
  });

  test("a namespace no namespace can be named is refused (it would watch nothing, and be ready)", () => {
    for (const namespace of ["Payments", "a.b", "-x", "x".repeat(64), ""]) {
      const result = v.safeParse(kubernetes.schema, { namespace });
      expect(result.success).toBe(false);
      expect(v.getDotPath(result.issues![0]!)).toBe("namespace");
      expect(result.issues![0]!.message).toContain("DNS-1123 label");
    }
    expect(v.parse(kubernetes.schema, { namespace: "kube-system" }).namespace).toBe("kube-system");
  });
});

describe("resources", () => {
  test("paths and resume keys", () => {
    const pods = resourceType("pods");
    const deployments = resourceType("deployments");
    expect(collectionPath(pods, {})).toBe("/api/v1/pods");
    expect(collectionPath(deployments, { namespace: "web" })).toBe("/apis/apps/v1/namespaces/web/deployments");
    expect(collectionPath(resourceType("nodes"), { namespace: "web" })).toBe("/api/v1/nodes");
    expect(resumeKey(pods, {})).toBe("kubernetes/core/v1/pods");
    // Selectors are part of the key: a changed selector must never resume an old watch.
    const selected = resumeKey(pods, { labelSelector: "app=web", namespace: "web" });
    expect(selected).toBe("kubernetes/core/v1/pods?labelSelector=app%3Dweb&namespace=web");
    expect(resumeKey(pods, { labelSelector: "app=api", namespace: "web" })).not.toBe(selected);
  });
});

describe("LineSplitter", () => {
  const bytes = (s: string) => new TextEncoder().encode(s);
  const decoder = new TextDecoder();

  test("joins lines split across chunks, including inside a multi-byte character", () => {
    const splitter = new LineSplitter();
    const all = bytes('{"a":"é"}\n{"b":"日本"}\n{"c":1}');
    const lines: string[] = [];
    // One byte at a time: every possible cut, including between the bytes of é and 日.
    for (let i = 0; i < all.length; i++) lines.push(...linesOf(splitter.push(all.subarray(i, i + 1)), decoder));
    expect(lines).toEqual(['{"a":"é"}', '{"b":"日本"}']);
    expect(linesOf(splitter.rest(), decoder)).toEqual(['{"c":1}']);
  });

  test("many lines in one chunk", () => {
    const splitter = new LineSplitter();
    expect(linesOf(splitter.push(bytes(" \n{}\n{}\n{")), decoder)).toEqual([" ", "{}", "{}"]);
    expect(linesOf(splitter.push(bytes("}\n")), decoder)).toEqual(["{}"]);
    expect(splitter.rest()).toEqual([]);
  });
});

describe("request budget", () => {
  /** "settled" if `promise` settles before a timer of 0 ms fires: taken at once, without waiting for any timer. */
  const atOnce = (promise: Promise<unknown>) =>
    Promise.race([
      promise.then(() => "settled"),
      new Promise((resolve) => setTimeout(resolve, 0, "waited for a timer")),
    ]);

  test("allows a burst, then spaces requests at the rate", async () => {
    const budget = createRequestBudget(20, 3);
    const signal = new AbortController().signal;
    const started = performance.now();
    const burst = (async () => {
      for (let i = 0; i < 3; i++) await budget.take(signal);
    })();
    expect(await atOnce(burst)).toBe("settled");
    for (let i = 0; i < 3; i++) await budget.take(signal);
    // Three more at 20/s: about 150 ms.
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });

  test("concurrent waiters are served in turn, not all at once", async () => {
    const budget = createRequestBudget(50, 1);
    const signal = new AbortController().signal;
    const started = performance.now();
    const done: number[] = [];
    const takes = [0, 1, 2, 3, 4].map(() => budget.take(signal).then(() => done.push(performance.now() - started)));
    // The first is served at once; the others wait their turn at 50/s.
    expect(await atOnce(Promise.race(takes))).toBe("settled");
    expect(done).toHaveLength(1);
    await Promise.all(takes);
    done.sort((a, b) => a - b);
    expect(done[4]!).toBeGreaterThanOrEqual(75);
  });

  test("a stop does not wait for the budget", async () => {
    // The next token is 1,000 s away: a take that waited for it would miss the deadline below by far.
    const budget = createRequestBudget(0.001, 1);
    const controller = new AbortController();
    await budget.take(controller.signal);
    const waiting = budget.take(controller.signal);
    controller.abort();
    let timer: Timer | undefined;
    const deadline = new Promise((resolve) => (timer = setTimeout(resolve, 2_000, "still waiting for the budget")));
    expect(await Promise.race([waiting.then(() => "stopped"), deadline])).toBe("stopped");
    clearTimeout(timer);
  });
});

describe("kubeconfig loading", () => {
  const kubeconfig = (extraUser: string) => `apiVersion: v1
kind: Config
current-context: main
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: ca.pem
contexts:
- name: main
  context: { cluster: c, user: u }
- name: other
  context: { cluster: c, user: u }
users:
- name: u
  user:
${extraUser}
`;

  test("a missing file is a clear error", () => {
    expect(() => loadKubeConfig({ kubeconfig: "/nonexistent/kubeconfig" })).toThrow(
      /cannot load kubeconfig \/nonexistent\/kubeconfig: .*(ENOENT|no such file)/,
    );
  });

  test("no kubeconfig anywhere is a clear error, not a silent localhost:8080", async () => {
    const home = await tempDir();
    try {
      withEnv({ HOME: home, KUBECONFIG: undefined, KUBERNETES_SERVICE_HOST: undefined }, () => {
        expect(() => loadKubeConfig({}, home)).toThrow(
          /no kubeconfig found: not running in a cluster, KUBECONFIG is not set and \S+\/\.kube\/config does not exist/,
        );
        expect(() => loadKubeConfig({}, home)).toThrow(`${home}/.kube/config`);
      });
    } finally {
      await rm(home, { recursive: true });
    }
  });

  test("an unknown context names the known ones", async () => {
    const dir = await tempDir();
    try {
      await writeFile(join(dir, "config"), kubeconfig("    token: abc"));
      await writeFile(join(dir, "ca.pem"), "CA PEM");
      expect(() => loadKubeConfig({ kubeconfig: join(dir, "config"), context: "prod" })).toThrow(
        'has no context "prod" (contexts: main, other)',
      );
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  test(
    "token, CA file relative to the kubeconfig, insecure flag and basic auth " + "reach Bun's fetch options",
    async () => {
      const dir = await tempDir();
      try {
        const { caPem } = await testPki();
        await writeFile(join(dir, "ca.pem"), caPem);
        await writeFile(join(dir, "config"), kubeconfig("    token: abc"));
        const { kc } = loadKubeConfig({ kubeconfig: join(dir, "config") });
        const withToken = await fetchOptions(kc);
        expect(withToken.headers.get("authorization")).toBe("Bearer abc");
        expect(withToken.tls.ca).toBe(caPem);
        expect(withToken.tls.rejectUnauthorized).toBeUndefined();

        await writeFile(
          join(dir, "config"),
          kubeconfig("    username: admin\n    password: secret").replace(
            "certificate-authority: ca.pem",
            "insecure-skip-tls-verify: true",
          ),
        );
        const basic = await fetchOptions(loadKubeConfig({ kubeconfig: join(dir, "config") }).kc);
        expect(basic.headers.get("authorization")).toBe(`Basic ${btoa("admin:secret")}`);
        expect(basic.tls.rejectUnauthorized).toBe(false);
      } finally {
        await rm(dir, { recursive: true });
      }
    },
  );

  test("in-cluster: the service account comes before KUBECONFIG, and a rotated token is read again", async () => {
    const root = await tempDir();
    const accountDir = join(root, "var/run/secrets/kubernetes.io/serviceaccount");
    try {
      await mkdir(accountDir, { recursive: true });
      await writeFile(join(accountDir, "token"), "first-token\n");
      const { caPem } = await testPki();
      await writeFile(join(accountDir, "ca.crt"), caPem);
      const env = { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443", KUBECONFIG: "/nonexistent" };
      const { kc, origin } = withEnv(env, () => loadKubeConfig({}, root));
      expect(origin).toBe("in-cluster service account");
      expect(kc.getCurrentCluster()!.server).toBe("https://10.0.0.1:443");
      const options = await fetchOptions(kc);
      expect(options.headers.get("authorization")).toBe("Bearer first-token");
      expect(options.tls.ca).toBe(caPem);
      // The kubelet rotates the projected token; a reload (what a 401 triggers) reads the new one.
      await writeFile(join(accountDir, "token"), "second-token");
      const reloaded = await fetchOptions(withEnv(env, () => loadKubeConfig({}, root)).kc);
      expect(reloaded.headers.get("authorization")).toBe("Bearer second-token");
    } finally {
      await rm(root, { recursive: true });
    }
  });
});

test("the inactivity message says whole milliseconds (a bookmark cadence gives a fraction)", () => {
  expect(new InactivityError(6001.966437).message).toBe("no data from the API server for 6002 ms");
});

test("a stop leaves no unhandled rejection behind: what the source waited for may still fail after it", async () => {
  // A stop during a sync: the end of the initial state (itself waiting unless stopped) rejects after the stop.
  const unhandled: unknown[] = [];
  const note = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", note);
  try {
    const stop = new AbortController();
    stop.abort();
    const inner = Promise.withResolvers<void>();
    await expect(unlessStopped(inner.promise, stop.signal)).rejects.toBe(stop.signal.reason);
    inner.reject(stop.signal.reason);
    await Bun.sleep(0);
    await Bun.sleep(0);
    expect(unhandled).toEqual([]);
  } finally {
    process.off("unhandledRejection", note);
  }
});
