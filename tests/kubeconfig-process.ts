/**
 * kubemeta as a user starts it against a kubeconfig, for the kubeconfig tests run from outside: `bun run main.ts` with
 * no config (the kubeconfig found as kubectl finds it), its store in a scratch folder, and what an SSE client sees.
 */
import { mkdir } from "node:fs/promises";
import type { TestApiServer } from "../simulator/index.ts";
import { rawPod } from "../testing/index.ts";
import { MAIN, Output } from "./reliability-process.ts";

/**
 * kubemeta started in `cwd` (HOME too) with `env` and no other kubeconfig nor proxy, `prefix` the command it runs
 * under: its URL once it listens, its output, and its stop.
 */
export async function startKubemeta(cwd: string, env: Record<string, string>, prefix: string[] = []) {
  await mkdir(cwd, { recursive: true });
  const environment = { ...process.env, HOME: cwd, ...env } as Record<string, string>;
  const elsewhere = ["KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "HTTPS_PROXY", "https_proxy"];
  for (const key of elsewhere) if (!(key in env)) delete environment[key];
  const child = Bun.spawn([...prefix, process.execPath, "run", MAIN, "--port", "0"], {
    cwd,
    env: environment,
    stdout: "pipe",
    stderr: "pipe",
  });
  const stdout = new Output(child.stdout);
  const stop = async () => {
    child.kill();
    await child.exited;
  };
  try {
    const [, port] = await stdout.waitFor(/"msg":"http listening","url":"http:\/\/0\.0\.0\.0:(\d+)/, 15_000);
    return { url: `http://127.0.0.1:${port}`, stdout, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A pod created now on `server` reaches an SSE client of kubemeta at `url` within 10 s. */
export async function seesNewPod(server: TestApiServer, url: string, name: string, namespace: string) {
  server.create(rawPod(name, { namespace }));
  const response = await fetch(`${url}/v1/watch?stream=all&kinds=Pod`, { signal: AbortSignal.timeout(10_000) });
  let text = "";
  try {
    for await (const chunk of response.body!) {
      text += Buffer.from(chunk).toString();
      if (text.includes(`"name":"${name}"`)) return true;
    }
  } catch {
    // The deadline passed: not seen.
  }
  return false;
}

/**
 * kubemeta's log lines that say a request was refused with a 401: in their words, not in a number field (a retry's
 * `"delayMs":401` is no refusal).
 */
export const unauthorizedLines = (stdout: Output): string[] =>
  stdout.text.split("\n").filter((line) => /\b401\b|Unauthorized/.test(line.replace(/"\w+":\d+/g, "")));
