/**
 * What the image and deploy/ ship, checked without a container engine: the files the Containerfile copies run
 * kubemeta (a directory left out is a module not found at start), and the manifests' probes let it start.
 */
import { afterAll, expect, test } from "bun:test";
import { cp, mkdir, readFile, rm, symlink } from "node:fs/promises";
import { basename, join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { exitWithin, Output } from "./reliability-process.ts";

const ROOT = join(import.meta.dir, "..");
const dirs: string[] = [];
let child: ReturnType<typeof Bun.spawn> | undefined;
afterAll(async () => {
  child?.kill("SIGKILL");
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/**
 * The image's /app under `app`: what the final stage's COPY lines take from the checkout, node_modules (copied from
 * the deps stage) linked to the checkout's, and `data` linked to `data` as the image links it to its volume.
 */
async function imageApp(app: string, data: string): Promise<void> {
  const containerfile = await readFile(join(ROOT, "Containerfile"), "utf8");
  const stage = containerfile.slice(containerfile.lastIndexOf("\nFROM "));
  expect(stage).toContain("ln -s /data /app/data");
  for (const line of stage.split("\n")) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== "COPY" || words.some((word) => word.startsWith("--from"))) continue;
    const target = join(app, words.at(-1)!);
    for (const source of words.slice(1, -1)) {
      const into = words.at(-1)!.endsWith("/") ? join(target, basename(source)) : target;
      await cp(join(ROOT, source), into, { recursive: true });
    }
  }
  await symlink(join(ROOT, "node_modules"), join(app, "node_modules"));
  await symlink(data, join(app, "data"));
}

test("the image's files run kubemeta: `--demo` in /app serves, its store in the volume; SIGTERM stops it", async () => {
  const work = await tempDir("kubemeta-image-");
  dirs.push(work);
  const app = join(work, "app");
  const volume = join(work, "volume");
  await mkdir(app);
  await mkdir(volume);
  await imageApp(app, volume);

  const env: Record<string, string | undefined> = { ...process.env, HOME: work };
  delete env.KUBECONFIG;
  child = Bun.spawn([process.execPath, "run", "main.ts", "--demo", "--port", "0"], {
    cwd: app,
    env,
    stdout: "pipe",
    stderr: "pipe",
  });
  const stdout = new Output(child.stdout as ReadableStream<Uint8Array>);
  const stderr = new Output(child.stderr as ReadableStream<Uint8Array>);
  const started = stdout.waitFor(/curl -N '(http:\/\/127\.0\.0\.1:\d+)\/v1\/watch\?stream=all'/, 60_000);
  const url = (
    await started.catch(async (error: unknown) => {
      throw new Error(`${String(error)}\nstderr:\n${stderr.text}`);
    })
  )[1]!;
  expect((await fetch(`${url}/readyz`)).status).toBe(200);
  expect(await Bun.file(join(volume, "demo", "kubemeta.db")).exists()).toBe(true);
  child.kill("SIGTERM");
  expect(await exitWithin(child, 15_000)).toBe(0);
}, 90_000);

interface Container {
  name: string;
  startupProbe?: { httpGet?: { path: string }; periodSeconds?: number; failureThreshold?: number };
  livenessProbe?: unknown;
}

test("deploy/: liveness counts once kubemeta listens, and the start may take minutes (the store's open)", async () => {
  for (const file of ["kubemeta.yaml", "kubemeta-ha.yaml"]) {
    const manifests = Bun.YAML.parse(await Bun.file(join(ROOT, "deploy", file)).text()) as {
      kind: string;
      spec?: { template: { spec: { containers: Container[] } } };
    }[];
    const container = manifests
      .find((m) => m.kind === "Deployment")!
      .spec!.template.spec.containers.find((c) => c.name === "kubemeta")!;
    expect(container.livenessProbe).toBeDefined();
    const startup = container.startupProbe;
    expect(startup?.httpGet?.path).toBe("/healthz");
    // Kubernetes' defaults: every 10 s, 3 failures. A remote store's open alone may take its 60 s timeout.
    const budgetSeconds = (startup?.periodSeconds ?? 10) * (startup?.failureThreshold ?? 3);
    expect(budgetSeconds).toBeGreaterThanOrEqual(2 * 60);
  }
});
