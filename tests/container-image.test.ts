/**
 * What the image and deploy/ ship, checked without a container engine: the files the Containerfile copies hold every
 * module kubemeta loads and run it (a directory left out is a module not found at start, or at the first use of a
 * worker), the container's way of running works (non-root,
 * read-only root filesystem, writes only to the store's volume and /tmp), and the manifests' probes let it start.
 */
import { afterAll, expect, test } from "bun:test";
import { chmod, chown, cp, mkdir, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import { startTestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { exitWithin, IMAGE_ENV, MAIN, Output } from "./reliability-process.ts";

const ROOT = join(import.meta.dir, "..");
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function dir(): Promise<string> {
  const path = await tempDir("kubemeta-image-");
  cleanups.push(() => rm(path, { recursive: true, force: true }));
  return path;
}

/** The final stage's COPY lines that take from the checkout (not from the deps stage): what each copies, and where. */
async function imageCopies(): Promise<{ sources: string[]; target: string }[]> {
  const containerfile = await readFile(join(ROOT, "Containerfile"), "utf8");
  const stage = containerfile.slice(containerfile.lastIndexOf("\nFROM "));
  expect(stage).toContain("ln -s /data /app/data");
  return stage.split("\n").flatMap((line) => {
    const words = line.trim().split(/\s+/);
    if (words[0] !== "COPY" || words.some((word) => word.startsWith("--from"))) return [];
    return [{ sources: words.slice(1, -1), target: words.at(-1)! }];
  });
}

/**
 * The image's /app under `app`: what the final stage's COPY lines take from the checkout, node_modules (copied from
 * the deps stage) linked to the checkout's, and `data` linked to `data` as the image links it to its volume.
 */
async function imageApp(app: string, data: string): Promise<void> {
  for (const { sources, target } of await imageCopies()) {
    for (const source of sources) {
      const into = target.endsWith("/") ? join(app, target, basename(source)) : join(app, target);
      await cp(join(ROOT, source), into, { recursive: true });
    }
  }
  await symlink(join(ROOT, "node_modules"), join(app, "node_modules"));
  await symlink(data, join(app, "data"));
}

/**
 * Every module of the checkout that loading `entries` may load, and the packages they import: static and dynamic
 * imports, and the modules handed to a thread or another module by URL (`new URL("./x.ts", import.meta.url)`: the
 * workers, the preparer), followed through the package's own name (`kubemeta/sdk`).
 */
async function moduleGraph(entries: string[]): Promise<{ modules: string[]; packages: string[] }> {
  const transpiler = new Bun.Transpiler({ loader: "ts" });
  const modules = new Set<string>();
  const packages = new Set<string>();
  const pending = entries.map((entry) => join(ROOT, entry));
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (modules.has(file)) continue;
    modules.add(file);
    const text = await Bun.file(file).text();
    const byUrl = [...text.matchAll(/new URL\("(\.[^"]+)", import\.meta\.url\)/g)].map((match) => match[1]!);
    for (const specifier of [...transpiler.scanImports(text).map((found) => found.path), ...byUrl]) {
      if (specifier.startsWith(".")) pending.push(resolve(dirname(file), specifier));
      else if (specifier.startsWith("kubemeta/")) pending.push(Bun.resolveSync(specifier, ROOT));
      else if (!/^(node|bun):/.test(specifier))
        packages.add(specifier.split("/", specifier.startsWith("@") ? 2 : 1).join("/"));
    }
  }
  return { modules: [...modules].map((file) => relative(ROOT, file)).sort(), packages: [...packages].sort() };
}

test("the image holds every module kubemeta loads, and the packages they import are installed there", async () => {
  const packageJson = (await Bun.file(join(ROOT, "package.json")).json()) as {
    exports: Record<string, string>;
    dependencies: Record<string, string>;
  };
  // main.ts, and what a mounted plugin or its tests import: `kubemeta/sdk`, `kubemeta/testing`, `kubemeta/client`.
  const { modules, packages } = await moduleGraph(["main.ts", ...Object.values(packageJson.exports)]);
  for (const loadedByUrl of [
    "plugins/sources/kubernetes/parse-worker.ts",
    "plugins/stores/libsql/writer-worker.ts",
    "plugins/stores/libsql/checkpoint-worker.ts",
    "core/prepare.ts",
  ]) {
    expect(modules).toContain(loadedByUrl);
  }
  const copied = (await imageCopies()).flatMap(({ sources }) => sources);
  const inImage = (module: string) => copied.some((source) => module === source || module.startsWith(`${source}/`));
  expect(modules.filter((module) => !inImage(module))).toEqual([]);
  // The deps stage installs with `--omit=dev`: a devDependency imported at run time is missing from the image.
  expect(packages.filter((name) => !(name in packageJson.dependencies))).toEqual([]);
});

test("the image's files run kubemeta: `--demo` in /app serves, its store in the volume; SIGTERM stops it", async () => {
  const work = await dir();
  const app = join(work, "app");
  const volume = join(work, "volume");
  await mkdir(app);
  await mkdir(volume);
  await imageApp(app, volume);

  const env: Record<string, string | undefined> = { ...process.env, HOME: work };
  delete env.KUBECONFIG;
  const child = Bun.spawn([process.execPath, "run", "main.ts", "--demo", "--port", "0"], {
    cwd: app,
    env,
    stdout: "pipe",
    stderr: "pipe",
  });
  cleanups.push(() => child.kill("SIGKILL"));
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

test("the README's plugin in the image, its podman command and config as written, records a deletion", async () => {
  const readme = await Bun.file(join(ROOT, "README.md")).text();
  const example = /- \*\*In the container image\*\*[\s\S]*?```sh\n([\s\S]*?)```\s*```yaml\n([\s\S]*?)```/.exec(readme);
  expect(example).not.toBeNull();
  const [, command, containerConfig] = example!;
  // The container's paths here: each bind mount's source under `work` (a named volume: a folder of its own), and
  // `node_modules/kubemeta` beside them as /node_modules/kubemeta is in the image.
  const work = await dir();
  const mounts = [...command!.matchAll(/-v (\S+?):(\/\S+?)(?::ro)?\s/g)].map(([, source, target]) => ({
    host: join(work, source!.startsWith("./") ? source! : `volume-${source}`),
    target: target!,
  }));
  const hostPath = (target: string) => mounts.find((mount) => mount.target === target)?.host;
  const [plugins, configFile, data] = ["/plugins", "/etc/kubemeta/kubemeta.yaml", "/data"].map(hostPath);
  expect([plugins, configFile, data]).not.toContain(undefined);
  for (const path of [plugins!, data!, join(work, "node_modules")]) await mkdir(path, { recursive: true });
  const app = join(work, "app");
  await imageApp(app, data!);
  await symlink(app, join(work, "node_modules/kubemeta"));
  await cp(join(ROOT, "examples/sink-plugin/deletions.ts"), join(plugins!, "deletions.ts"));
  const api = await startTestApiServer();
  cleanups.push(() => api.stop());
  populate(api, { nodes: 1, podsPerNode: 2 });
  // A kubeconfig the command mounts (the README makes it with `kubectl config view --flatten`): the simulator's.
  for (const { host } of mounts.filter(({ host }) => basename(host) === "kubeconfig")) {
    await api.writeKubeconfig(host, "token");
  }
  let config = containerConfig!;
  for (const { host, target } of mounts.toSorted((a, b) => b.target.length - a.target.length)) {
    config = config.replaceAll(target, host);
  }
  await writeFile(configFile!, config);

  const env: Record<string, string | undefined> = { ...process.env, ...IMAGE_ENV, HOME: work };
  delete env.KUBECONFIG;
  // The image's ENTRYPOINT and CMD; `--port 0` only so that no other test's port 8080 is taken.
  const child = Bun.spawn([process.execPath, "run", "main.ts", "--config", configFile!, "--port", "0"], {
    cwd: app,
    env,
    stdout: "pipe",
    stderr: "pipe",
  });
  cleanups.push(() => child.kill("SIGKILL"));
  const stdout = new Output(child.stdout);
  const url = (await stdout.waitFor(/"msg":"http listening","url":"([^"]+)"/, 30_000))[1]!.replace(/\/$/, "");
  await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 15_000, "kubemeta to be ready");
  const pod = api.names("Pod")[0]!;
  api.delete("Pod", pod.namespace, pod.name);
  const audit = join(data!, "deletions.log");
  const recorded = await waitFor(
    async () => (await Bun.file(audit).exists()) && (await Bun.file(audit).text()),
    10_000,
    `the deletion in ${audit}`,
  );
  expect(recorded).toContain(`DELETED Pod ${pod.namespace}/${pod.name} `);
  child.kill("SIGTERM");
  expect(await exitWithin(child, 15_000)).toBe(0);
}, 60_000);

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

const isolated =
  process.getuid?.() === 0 &&
  Bun.which("unshare") !== null &&
  Bun.which("setpriv") !== null &&
  Bun.spawnSync(["unshare", "-m", "--propagation", "private", "true"]).exitCode === 0;

/**
 * What the container does, without a container engine: a private mount namespace where `/` is read-only, only the
 * data dir and a temp dir are writable (the volume and the /tmp emptyDir of deploy/), and kubemeta runs as nobody
 * with no capabilities and the Containerfile's environment. HOME is writable too, to show that nothing uses it.
 */
test.skipIf(!isolated)(
  "as a non-root user on a read-only root filesystem, kubemeta serves and writes only to its data dir",
  async () => {
    const work = await dir();
    const nobody = 65534;
    await chmod(work, 0o755);
    const data = join(work, "data");
    const tmp = join(work, "tmp");
    const home = join(work, "home");
    for (const path of [data, tmp, home]) {
      await mkdir(path);
      await chown(path, nobody, nobody);
    }
    const api = await startTestApiServer();
    cleanups.push(() => api.stop());
    populate(api, { nodes: 1, podsPerNode: 2 });
    await api.writeKubeconfig(join(work, "kubeconfig"), "token");
    await chmod(join(work, "kubeconfig"), 0o644);
    const configFile = join(work, "kubemeta.yaml");
    await writeFile(
      configFile,
      [
        `store: { type: libsql, url: "file:${join(data, "kubemeta.db")}" }`,
        `sources: [{ type: kubernetes, kubeconfig: "${join(work, "kubeconfig")}" }]`,
        "sinks: [{ type: sse }]",
        "http: { address: 127.0.0.1, port: 0 }",
      ].join("\n"),
      { mode: 0o644 },
    );
    // The checkout may sit under a directory nobody cannot enter (mktemp -d is 0700): it is bind-mounted at `app`,
    // as the image holds it at /app.
    const app = join(work, "app");
    await mkdir(app);
    const inApp = (path: string) => (path.startsWith(`${ROOT}/`) ? join(app, relative(ROOT, path)) : path);
    const env: Record<string, string> = { ...IMAGE_ENV, PATH: "/usr/bin:/bin", HOME: home };
    expect(env.BUN_RUNTIME_TRANSPILER_CACHE_PATH).toBe("0");
    env.TMPDIR = tmp; // /tmp in the container
    const script = [
      'mount --bind "$5" "$6"',
      'for writable in "$1" "$2" "$3"; do mount --bind "$writable" "$writable"; done',
      "mount -o remount,bind,ro /",
      "mount -o remount,bind,ro /dev/shm",
      // Root itself cannot write beside the writable dirs any more.
      '! touch "$4/probe" 2>/dev/null',
      "shift 6",
      `exec setpriv --reuid=${nobody} --regid=${nobody} --clear-groups --inh-caps=-all env -i "$@"`,
    ].join(" && ");
    const envArgs = Object.entries(env).map(([key, value]) => `${key}=${value}`);
    const command = [...envArgs, inApp(process.execPath), "run", inApp(MAIN), "--config", configFile];
    const child = Bun.spawn(
      [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        data,
        tmp,
        home,
        work,
        ROOT,
        app,
        ...command,
      ],
      { cwd: work, stdout: "pipe", stderr: "pipe" },
    );
    cleanups.push(() => child.kill("SIGKILL"));
    const stdout = new Output(child.stdout);
    const stderr = new Output(child.stderr);
    const url = (await stdout.waitFor(/"msg":"http listening","url":"([^"]+)"/, 20_000))[1]!.replace(/\/$/, "");
    // The process is kubemeta itself (every wrapper exec'd into it), as nobody.
    const status = await readFile(`/proc/${child.pid}/status`, "utf8");
    expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(nobody));
    // Ready: the source's initial state committed to the store.
    await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 15_000, "kubemeta to be ready");
    const pods = (await (await fetch(`${url}/v1/objects?kind=Pod`)).json()) as { items: unknown[] };
    expect(pods.items.length).toBe(2);
    child.kill("SIGTERM");
    expect(await exitWithin(child, 15_000)).toBe(0);
    const output = `${await stdout.all()}\n${await stderr.all()}`;
    expect(output).not.toMatch(/read-only file system|EROFS|EACCES|permission denied/i);
    expect(stdout.lines("shutting down").length).toBe(1);
    // Logs of several clusters read in one place: the store's line says whose these are.
    expect(stdout.lines("store open")[0]).toMatchObject({ cluster: "default" });
    expect(await readdir(data)).toContain("kubemeta.db");
    expect(await readdir(home)).toEqual([]); // no Bun cache, nothing else
  },
  40_000,
);
