/**
 * The host's isolation of a plugin's lifecycle (host/supervise.ts): a start that throws is
 * retried with backoff and counted; a start or stop that hangs holds up nobody; and
 * guardProcess keeps a plugin's stray exception from ending the server.
 */
import { expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { createLogger, silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { supervise, type SuperviseOptions } from "../host/supervise.ts";
import { consume } from "../sdk/consume.ts";
import { startTestHost, tempDir, waitFor } from "../testing/index.ts";
import { addPods, contextOn, upTo, type Logged } from "./plugins-fixtures.ts";

const repo = join(import.meta.dir, "..");

function options(
  name: string,
  extra: Partial<SuperviseOptions> = {},
): SuperviseOptions & { failures(phase: string): number } {
  const metrics = extra.metrics ?? createMetrics();
  return {
    name,
    kind: "sink",
    logger: silentLogger,
    metrics,
    deadlineMs: 100,
    ...extra,
    failures: (phase) =>
      metrics.counter("kubemeta_plugin_failures_total", "").get({ plugin: name, kind: "sink", phase }),
  };
}

test("a start that throws is logged, counted and retried with backoff in the background until it works", async () => {
  const logged: string[] = [];
  const opts = options("late", { logger: createLogger({ write: (line) => void logged.push(line) }) });
  let attempts = 0;
  let started = false;
  const plugin = supervise(
    () => ({
      async start() {
        if (++attempts < 3) throw new Error("backend down");
        started = true;
      },
      async stop() {},
    }),
    opts,
  );
  await plugin.start();
  expect(attempts).toBe(1);
  await waitFor(() => started, 5_000, "the third attempt");
  expect(opts.failures("start")).toBe(2);
  // The second failure, of the same cause, is a debug line: this logger logs from info.
  expect(
    logged.filter((line) => line.includes('"msg":"sink failed to start; retrying"') && line.includes("backend down")),
  ).toHaveLength(1);
  await plugin.stop();
});

test("a start failing again and again is one error, not one per attempt, and one line once it starts", async () => {
  const logged: Logged[] = [];
  const opts = options("away", { logger: createLogger({ write: (line) => void logged.push(JSON.parse(line)) }) });
  let attempts = 0;
  let started = false;
  const plugin = supervise(
    () => ({
      async start() {
        if (++attempts <= 4) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
        started = true;
      },
      async stop() {},
    }),
    opts,
  );
  await plugin.start();
  // The backoff's first steps, with full jitter: 0.5, 1, 2 and 4 s at most.
  await waitFor(() => started, 15_000, "the fifth attempt");
  await plugin.stop();
  expect(opts.failures("start")).toBe(4);
  expect(logged.map(({ level, msg }) => ({ level, msg }))).toEqual([
    { level: "error", msg: "sink failed to start; retrying" },
    { level: "info", msg: "sink started after retrying" },
  ]);
  expect(logged[1]).toMatchObject({ failedAttempts: 4 });
  expect(logged[1]!.downMs).toBeGreaterThan(0);
}, 20_000);

test("a start that hangs, and a stop that hangs, hold up the caller no longer than the deadline", async () => {
  const opts = options("never");
  const plugin = supervise(() => ({ start: () => new Promise(() => {}), stop: () => new Promise(() => {}) }), opts);
  let began = performance.now();
  await plugin.start();
  expect(performance.now() - began).toBeLessThan(1_000);
  expect(opts.failures("start")).toBe(1);
  began = performance.now();
  await plugin.stop();
  expect(performance.now() - began).toBeLessThan(1_000);
  expect(opts.failures("stop")).toBe(1);
});

test("a start and a stop that both hang at every attempt: one 'did not stop in time' error, not one each", async () => {
  const logged: Logged[] = [];
  const opts = options("hung", { logger: createLogger({ write: (line) => void logged.push(JSON.parse(line)) }) });
  const fifth = Promise.withResolvers<void>();
  let created = 0;
  const plugin = supervise(() => {
    const instance = ++created;
    const start = () => {
      if (instance === 5) fifth.resolve();
      return new Promise<void>(() => {});
    };
    return { start, stop: () => new Promise<void>(() => {}) };
  }, opts);
  await plugin.start();
  // The backoff's first steps, with full jitter: 0.5, 1 and 2 s at most, each after a start and a stop of 100 ms.
  await fifth.promise;
  expect(opts.failures("stop")).toBe(4);
  const abandoned = () => logged.filter((line) => line.msg === "sink did not stop in time; abandoning it");
  expect(abandoned().map(({ level }) => level)).toEqual(["error"]);
  // The host's own stop, of the fifth instance whose start is under way, says it whatever came before: what held up
  // the shutdown.
  await plugin.stop();
  expect(opts.failures("stop")).toBe(5);
  expect(abandoned().map(({ level }) => level)).toEqual(["error", "error"]);
}, 20_000);

test("a start that outlives the deadline and then fails is one failure, not two", async () => {
  const opts = options("late-failure");
  const gate = Promise.withResolvers<void>();
  let attempts = 0;
  const plugin = supervise(
    () => ({
      async start() {
        if (++attempts > 1) return;
        await gate.promise;
        throw new Error("gave up at last");
      },
      async stop() {},
    }),
    opts,
  );
  await plugin.start();
  expect(opts.failures("start")).toBe(1);
  gate.resolve();
  await waitFor(() => attempts === 2, 5_000, "the second attempt");
  expect(opts.failures("start")).toBe(1);
  await plugin.stop();
});

test("a start that never settles is a failed start: logged, counted, stopped, created and started again", async () => {
  const logged: string[] = [];
  const opts = options("stuck", { logger: createLogger({ write: (line) => void logged.push(line) }) });
  const late = Promise.withResolvers<void>();
  const lateStartOver = Promise.withResolvers<void>();
  const started: number[] = [];
  const stopped: number[] = [];
  let created = 0;
  const plugin = supervise(() => {
    const instance = ++created;
    let halted = false;
    return {
      async start() {
        if (instance === 1) await late.promise;
        // What a plugin does once its start is done, unless it was stopped meanwhile (as consume does).
        if (!halted) started.push(instance);
        if (instance === 1) lateStartOver.resolve();
      },
      async stop() {
        halted = true;
        stopped.push(instance);
      },
    };
  }, opts);
  await plugin.start();
  expect(opts.failures("start")).toBe(1);
  await waitFor(() => started.length === 1, 5_000, "the second instance's start");
  expect(started).toEqual([2]);
  expect(stopped).toEqual([1]);
  const said = logged.filter((line) => line.includes('"msg":"sink failed to start; retrying"'));
  expect(said.map((line) => (JSON.parse(line) as { error: { message: string } }).error.message)).toEqual([
    "its start did not finish within 100 ms; stopped, to be created again",
  ]);
  // The stuck start ends at last: nothing more is created, started or counted.
  late.resolve();
  await lateStartOver.promise;
  expect({ created, started, failures: opts.failures("start") }).toEqual({ created: 2, started: [2], failures: 1 });
  await plugin.stop();
  expect(stopped).toEqual([1, 2]);
  expect(opts.failures("stop")).toBe(0);
});

test("a consume sink whose first start hangs delivers each update once, from its second instance", async () => {
  const th = await startTestHost();
  try {
    const late = Promise.withResolvers<void>();
    const delivered: number[] = [];
    let created = 0;
    const opts = options("consumer", { metrics: th.host.metrics });
    const plugin = supervise(() => {
      const instance = ++created;
      const consumer = consume(contextOn(th, "consumer"), {
        async deliver(envelopes) {
          delivered.push(...envelopes.map((e) => e.version));
        },
      });
      return {
        async start() {
          if (instance === 1) await late.promise;
          await consumer.start();
        },
        stop: () => consumer.stop(),
      };
    }, opts);
    await plugin.start();
    addPods(th, 3);
    await waitFor(() => delivered.length === 3, 5_000, "the second instance's deliveries");
    late.resolve();
    addPods(th, 2, 3);
    await waitFor(() => delivered.length >= 5, 5_000, "the later updates");
    await plugin.stop();
    expect(delivered).toEqual(upTo(5));
    expect(created).toBe(2);
  } finally {
    await th.destroy();
  }
});

test("a stop that throws, even synchronously, is counted and not thrown", async () => {
  const opts = options("clumsy");
  const plugin = supervise(
    () => ({
      async start() {},
      stop() {
        throw new Error("already closed");
      },
    }),
    opts,
  );
  await plugin.start();
  await plugin.stop();
  expect(opts.failures("stop")).toBe(1);
});

test("a plugin whose factory throws cannot start: logged, counted, tried again, never thrown", async () => {
  const logged: string[] = [];
  const opts = options("refused", { logger: createLogger({ write: (line) => void logged.push(line) }) });
  let created = 0;
  const plugin = supervise(() => {
    if (++created < 3) throw new Error("consume: fanOut delivers every stream");
    return { async start() {}, async stop() {} };
  }, opts);
  await plugin.start();
  await waitFor(() => created === 3, 5_000, "the third creation");
  expect(opts.failures("start")).toBe(2);
  expect(logged.filter((line) => line.includes("fanOut delivers every stream"))).toHaveLength(1);
  expect(logged.filter((line) => line.includes('"msg":"sink started after retrying"'))).toHaveLength(1);
  await plugin.stop();
  await plugin.stop();
  expect(opts.failures("stop")).toBe(0);
});

test("a factory that returns no { start, stop } (async create) is said so, tried again, not stopped", async () => {
  const logged: string[] = [];
  const logger = createLogger({ level: "debug", write: (line) => void logged.push(line) });
  const opts = options("async", { logger });
  let created = 0;
  const made: (() => unknown)[] = [
    async () => ({ async start() {}, async stop() {} }),
    async () => {
      throw new Error("refused in an async create");
    },
    () => undefined,
    () => ({ start: "soon" }),
  ];
  const plugin = supervise(() => made[created++]!() as never, opts);
  await plugin.start();
  await waitFor(() => created === made.length, 10_000, "every creation");
  await plugin.stop();
  const said = logged
    .filter((line) => line.includes('"msg":"sink failed to start; retrying"'))
    .map((line) => JSON.parse(line) as { level: string; error: { message: string } });
  // Each an Error: after the first, the same cause, each a debug line.
  expect(said.map((line) => line.level)).toEqual(["error", "debug", "debug", "debug"]);
  expect(said.map((line) => line.error.message)).toEqual([
    "its create returned a Promise, not the sink: create returns { start, stop } at once (what takes time: in start)",
    "its create returned a Promise, not the sink: create returns { start, stop } at once (what takes time: in start)",
    "its create returned undefined, not the sink: create returns { start, stop }",
    "its create returned an object without start and stop, not the sink: create returns { start, stop }",
  ]);
  expect(opts.failures("stop")).toBe(0);
});

test("a create or start that fails with no Error (a string, undefined, an object) says so", async () => {
  const logged: string[] = [];
  const opts = options("odd", { logger: createLogger({ write: (line) => void logged.push(line) }) });
  // The instance is kept after a failed start, and its start tried again: one creation that throws, then one.
  const rejections = [undefined, { status: 503 }];
  let created = 0;
  let started = false;
  const plugin = supervise(() => {
    if (created++ === 0) throw "refuses its config";
    return {
      start: async () => {
        if (rejections.length > 0) return Promise.reject(rejections.shift());
        started = true;
      },
      async stop() {},
    };
  }, opts);
  await plugin.start();
  await waitFor(() => started, 10_000, "the start after every failure");
  await plugin.stop();
  const said = logged.map((line) => JSON.parse(line) as { level: string; msg: string; error: unknown });
  // A string, undefined, an object: each a cause new to the outage, an error at once.
  const failed = said.filter((line) => line.msg === "sink failed to start; retrying");
  expect(failed.map(({ level, error }) => ({ level, error }))).toEqual([
    { level: "error", error: "refuses its config" },
    { level: "error", error: "undefined" },
    { level: "error", error: '{"status":503}' },
  ]);
});

test("stop before a creation that never succeeded stops nothing and fails nothing", async () => {
  const opts = options("never-created");
  const plugin = supervise(() => {
    throw new Error("bad config");
  }, opts);
  await plugin.start();
  await plugin.stop();
  expect(opts.failures("stop")).toBe(0);
});

/**
 * Runs `script` with `bun run` (a child process: the quirk ends the process), its imports resolved against the
 * repository.
 */
async function runScript(script: string): Promise<{ exitCode: number; stdout: string }> {
  const dir = await tempDir("kubemeta-child-");
  const file = join(dir, "child.ts");
  await Bun.write(file, script.replaceAll("REPO", repo));
  const child = Bun.spawn([process.execPath, "run", file], { stdout: "pipe", stderr: "pipe" });
  const [stdout, exitCode] = await Promise.all([new Response(child.stdout).text(), child.exited]);
  await rm(dir, { recursive: true, force: true });
  return { exitCode, stdout };
}

test(
  "Bun quirk: an exception thrown from a timer ends the process; " + "guardProcess logs it and keeps running",
  async () => {
    const script = (guarded: boolean) => `
    import { guardProcess } from "REPO/host/supervise.ts";
    import { createLogger } from "REPO/host/logger.ts";
    import { createMetrics } from "REPO/host/metrics.ts";
    const metrics = createMetrics();
    if (${guarded}) guardProcess(createLogger(), metrics);
    console.log(metrics.render().split("\\n").filter((line) => line.startsWith("kubemeta_unhandled")).join(" "));
    setTimeout(() => { throw new Error("a plugin's timer failed"); }, 1);
    setTimeout(() => console.log("still running"), 50);
  `;
    const bare = await runScript(script(false));
    expect(bare.exitCode).not.toBe(0);
    expect(bare.stdout).not.toContain("still running");
    const guarded = await runScript(script(true));
    expect(guarded.exitCode).toBe(0);
    expect(guarded.stdout).toContain("still running");
    expect(guarded.stdout).toContain('"msg":"uncaught exception; kubemeta keeps running"');
    // At 0 from the start, so that an alert on its increase sees the first one.
    expect(guarded.stdout).toContain(
      'kubemeta_unhandled_errors_total{type="exception"} 0 kubemeta_unhandled_errors_total{type="rejection"} 0',
    );
  },
);
