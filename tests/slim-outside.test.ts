/**
 * The `slim` config's annotation allow-lists as a user writes them, against what the API server lets an annotation key
 * be: a qualified name whose case does not matter (apimachinery's ValidateAnnotations lowercases the key before
 * IsQualifiedName), so `Example.com/owner` is a key a Pod can carry, while `example.com/owner-` or `a..b/x` is none.
 */
import { afterEach, expect, test } from "bun:test";
import { appendFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { tempDir, waitFor } from "../testing/index.ts";
import { cleanups, runCleanups, setup } from "./faults-cluster.ts";
import { MAIN } from "./reliability-process.ts";

afterEach(runCleanups);

// The last one: the start of a DNS prefix longer than a name can be.
const KEPT = ["Example.com/owner", "Team.Example.com/*", "example.com/owner-*", "App*", `${"a".repeat(100)}*`];

async function check(dir: string, annotations: string[]): Promise<{ code: number; stderr: string }> {
  const config = join(dir, "check.yaml");
  await writeFile(
    config,
    [
      "http: { address: 127.0.0.1 }",
      `store: { type: libsql, url: "file:${join(dir, "check.db")}" }`,
      `slim: { annotations: ${JSON.stringify(annotations)} }`,
    ].join("\n"),
  );
  const proc = Bun.spawn([process.execPath, "run", MAIN, "--check", "--config", config], { stderr: "pipe" });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  return { code, stderr };
}

test("an entry a legal key can match, an upper-case prefix too, is taken and keeps that annotation", async () => {
  const cluster = await setup();
  const checked = await check(cluster.dir, KEPT);
  expect({ code: checked.code, invalid: checked.stderr.includes("invalid config") }).toEqual({
    code: 0,
    invalid: false,
  });
  await appendFile(join(cluster.dir, "kubemeta.yaml"), `\nslim: { annotations: ${JSON.stringify(KEPT)} }\n`);
  const kubemeta = await cluster.start();
  cleanups.push(() => kubemeta.proc.kill("SIGKILL"));
  await cluster.ready();
  const annotations = {
    "Example.com/owner": "payments",
    "Team.Example.com/tier": "gold",
    "example.com/owner-team": "a",
    "App-id": "7",
    "example.com/owner": "dropped",
  };
  cluster.server.create({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "annotated", namespace: "default", annotations },
    spec: { containers: [{ name: "c", image: "busybox" }] },
  });
  const kept = await waitFor(
    async () => {
      const body = (await (await fetch(`${cluster.url}/v1/objects?kind=Pod&namespace=default`)).json()) as {
        items: { name: string; object: { metadata: { annotations?: Record<string, string> } } }[];
      };
      return body.items.find((item) => item.name === "annotated")?.object.metadata.annotations;
    },
    10_000,
    "the annotated Pod in /v1/objects",
  );
  const dropped = "example.com/owner";
  expect(kept).toEqual(Object.fromEntries(Object.entries(annotations).filter(([key]) => key !== dropped)));
});

test("an entry no legal key can match is refused at its path, each one", async () => {
  const dir = await tempDir("kubemeta-slim-outside-");
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const refused = ["example.com/owner-", "a..b/x", "-x.io/y", ".x", "example.com/-x", "a".repeat(64)];
  const { code, stderr } = await check(dir, refused);
  expect(code).toBe(1);
  for (const [i, entry] of refused.entries())
    expect(stderr).toContain(`slim.annotations[${i}]: ${JSON.stringify(entry)} matches no annotation key`);
});
