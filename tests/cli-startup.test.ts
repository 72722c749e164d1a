/**
 * `main.ts tail` loads the client library alone: not the host, its plugins, the store's client or the Kubernetes
 * client, which made each `tail` (a terminal's command, a script's, and the tail tests' dozens of subprocesses at
 * once) spend most of a second of CPU loading ~1,200 modules it never ran. `--help` and bad arguments of the other
 * commands are answered before any of it loads too (cli/command.ts). The Kubernetes client, half of a start's CPU, is
 * loaded only by what uses it: not by rbac, new-epoch or a --check whose config names no kubeconfig.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAIN } from "./reliability-process.ts";

const dir = await mkdtemp(join(tmpdir(), "kubemeta-tail-startup-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The modules `main.ts <args>` loaded, and its exit code. */
async function loadedBy(args: string[]): Promise<{ code: number; loaded: string[] }> {
  // Bun keeps ES modules in require.cache too: what the process loaded, said as it exits.
  const preload = join(dir, "loaded.ts");
  await writeFile(
    preload,
    'process.on("exit", () => process.stderr.write(`LOADED ${JSON.stringify(Object.keys(require.cache))}\\n`));\n',
  );
  const proc = Bun.spawn([process.execPath, `--preload=${preload}`, MAIN, ...args], { stdout: "pipe", stderr: "pipe" });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text(), proc.stdout.text()]);
  return { code, loaded: JSON.parse(/^LOADED (.*)$/m.exec(stderr)![1]!) as string[] };
}

const heavy = /\/(host|core|kube|simulator)\/|\/plugins\/(sources|stores)\/|@kubernetes\/client-node|@libsql|hono/;

test("tail loads neither the service nor its heavy dependencies", async () => {
  const { code, loaded } = await loadedBy(["tail", "--bogus"]);
  expect(code).toBe(2);
  expect(loaded.filter((path) => heavy.test(path))).toEqual([]);
  expect(loaded.some((path) => path.endsWith("/cli/tail.ts"))).toBe(true);
});

test("--help and bad arguments are answered before the service loads", async () => {
  for (const [args, exit] of [
    [["--help"], 0],
    [["--chekc"], 2],
    [["rbac", "--check"], 2],
    [["--port", "x"], 2],
  ] as const) {
    const { code, loaded } = await loadedBy([...args]);
    expect({ args, code }).toEqual({ args, code: exit });
    expect(loaded.filter((path) => heavy.test(path) || path.endsWith("/cli/main.ts"))).toEqual([]);
  }
});

test("rbac, new-epoch and --check load the Kubernetes client only for a kubeconfig the config names", async () => {
  const kubeconfig = join(dir, "kubeconfig.yaml");
  await writeFile(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true } }]
users: [{ name: u, user: { token: t } }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: x
`,
  );
  const config = async (name: string, source: string) => {
    const path = join(dir, `${name}.yaml`);
    await writeFile(path, `store: { type: libsql, url: "file:${join(dir, name)}.db" }\nsources: [${source}]\n`);
    return path;
  };
  const plain = await config("plain", "{ type: kubernetes }");
  const named = await config("named", `{ type: kubernetes, kubeconfig: "${kubeconfig}" }`);
  const client = (loaded: string[]) => loaded.some((path) => path.includes("@kubernetes/client-node"));
  // --check creates the store new-epoch then renews.
  for (const args of [
    ["rbac", "--config", plain],
    ["--check", "--config", plain],
    ["new-epoch", "--config", plain],
  ]) {
    const { code, loaded } = await loadedBy(args);
    expect({ args, code, client: client(loaded) }).toEqual({ args, code: 0, client: false });
  }
  // What the check of a kubeconfig loads: the preload above sees it.
  const { code, loaded } = await loadedBy(["--check", "--config", named]);
  expect({ code, client: client(loaded) }).toEqual({ code: 0, client: true });
});

test("only --demo loads the simulated cluster, not --check (all a serve loads before it starts)", async () => {
  const config = join(dir, "no-demo.yaml");
  await writeFile(config, `store: { type: libsql, url: "file:${join(dir, "no-demo")}.db" }\n`);
  const { code, loaded } = await loadedBy(["--check", "--config", config]);
  expect({ code, simulator: loaded.filter((path) => path.includes("/simulator/")) }).toEqual({
    code: 0,
    simulator: [],
  });
});
