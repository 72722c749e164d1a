/** `main.ts rbac`: the ClusterRole a config needs, and deploy/'s ClusterRole kept equal to it. */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { policyRules } from "../cli/rbac.ts";
import { resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import { tempDir } from "../testing/index.ts";

const ROOT = join(import.meta.dir, "..");
const MAIN = join(ROOT, "main.ts");
const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

interface Manifest {
  kind: string;
  rules?: unknown;
  data?: Record<string, string>;
}

async function run(...args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const child = Bun.spawn([process.execPath, MAIN, ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { exitCode, stdout, stderr };
}

async function configFile(text: string): Promise<string> {
  const dir = await tempDir("kubemeta-rbac-");
  dirs.push(dir);
  const file = join(dir, "kubemeta.yaml");
  await Bun.write(file, text);
  return file;
}

test("deploy/kubemeta.yaml grants what its shipped config needs: get, list, watch on its resources", async () => {
  const manifests = Bun.YAML.parse(await Bun.file(join(ROOT, "deploy/kubemeta.yaml")).text()) as Manifest[];
  const role = manifests.find((m) => m.kind === "ClusterRole");
  const shipped = manifests.find((m) => m.kind === "ConfigMap")?.data?.["kubemeta.yaml"];
  expect(shipped).toBeString();
  // The Deployment passes the token from its Secret (tests/security-auth.test.ts checks that part).
  const env = { KUBEMETA_TOKEN: "token-from-the-secret-0123456789" };
  const config = await resolveConfig(Bun.YAML.parse(shipped!), { baseDir: ROOT, registry: builtins, env });
  expect(role?.rules).toEqual(policyRules(config));
});

test("rbac prints the ClusterRole of the config: custom resources by group, one rule per group", async () => {
  const file = await configFile(
    [
      "sources:",
      "  - type: kubernetes",
      "    resources: [pods, nodes, deployments, replicasets,",
      "      argoproj.io/v1alpha1/rollouts, v1/persistentvolumeclaims]",
    ].join("\n"),
  );
  const { exitCode, stdout, stderr } = await run("rbac", "--config", file);
  expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });
  expect(Bun.YAML.parse(stdout)).toEqual({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: "kubemeta" },
    rules: [
      { apiGroups: [""], resources: ["pods", "nodes", "persistentvolumeclaims"], verbs: ["get", "list", "watch"] },
      { apiGroups: ["apps"], resources: ["deployments", "replicasets"], verbs: ["get", "list", "watch"] },
      { apiGroups: ["argoproj.io"], resources: ["rollouts"], verbs: ["get", "list", "watch"] },
    ],
  });
});

test("rbac with a config that does not validate prints the errors and exits 1", async () => {
  const file = await configFile("sources:\n  - type: kubernetes\n    resources: [pods, argoproj.io/rollouts]\n");
  const { exitCode, stdout, stderr } = await run("rbac", "--config", file);
  expect(exitCode).toBe(1);
  expect(stdout).toBe("");
  expect(stderr).toContain("sources[0].resources");
});
