/** `main.ts rbac`: the ClusterRole (and with `ha` the Lease's Role) a config needs, and deploy/'s kept equal to it. */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { leaseRoleYaml, policyRules } from "../cli/rbac.ts";
import { resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import { tempDir } from "../testing/index.ts";
import { startHranaServer } from "./hrana-server.ts";
import { manifestsOf, shippedConfig } from "./deploy-manifests.ts";

const ROOT = join(import.meta.dir, "..");
const MAIN = join(ROOT, "main.ts");
const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

interface Manifest {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: unknown;
  data?: Record<string, string>;
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace: string }[];
  spec?: { replicas?: number; template: { spec: PodSpec } };
}
interface PodSpec {
  serviceAccountName: string;
  containers: {
    env?: {
      name: string;
      value?: string;
      valueFrom?: {
        fieldRef?: { fieldPath: string };
        secretKeyRef?: { name: string; key: string };
        resourceFieldRef?: { resource: string };
      };
    }[];
    volumeMounts: { name: string; mountPath: string }[];
    resources: { limits: Record<string, string> };
  }[];
  volumes: { name: string; persistentVolumeClaim?: unknown }[];
}

/** What the Deployment of deploy/kubemeta-ha.yaml gives its pods: Secrets' values, and the downward API's. */
const HA_ENV = {
  KUBEMETA_TOKEN: "token-from-the-secret-0123456789",
  LIBSQL_URL: "libsql://kubemeta-myorg.turso.io",
  LIBSQL_AUTH_TOKEN: "a-jwt-from-the-secret",
  POD_NAME: "kubemeta-ha-5d8c7b9f4-x2x7q",
  POD_NAMESPACE: "kubemeta",
};

async function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const child = Bun.spawn([process.execPath, MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
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

/** A quantity of bytes as Kubernetes writes it (`1536Mi`), in bytes, as the downward API gives it. */
function bytesOf(quantity: string): number {
  const [, number, unit] = /^(\d+)(Ki|Mi|Gi)?$/.exec(quantity)!;
  return Number(number) * 1024 ** ["", "Ki", "Mi", "Gi"].indexOf(unit ?? "");
}

/** The environment a Deployment gives its container: its values, its Secrets' (`secrets["name/key"]`), the API's. */
function podEnvironment(deployment: Manifest, secrets: Record<string, string>): Record<string, string> {
  const [container] = deployment.spec!.template.spec.containers;
  const downward: Record<string, string> = {
    "metadata.name": `${deployment.metadata.name}-5d8c7b9f4-x2x7q`,
    "metadata.namespace": deployment.metadata.namespace!,
  };
  return Object.fromEntries(
    container!.env!.map(({ name, value, valueFrom }) => {
      const { fieldRef, secretKeyRef, resourceFieldRef } = valueFrom ?? {};
      if (secretKeyRef) return [name, secrets[`${secretKeyRef.name}/${secretKeyRef.key}`]!];
      if (fieldRef) return [name, downward[fieldRef.fieldPath]!];
      if (resourceFieldRef) return [name, String(bytesOf(container!.resources.limits.memory!))];
      return [name, value!];
    }),
  );
}

test.each(["kubemeta.yaml", "kubemeta-ha.yaml"])(
  "deploy/%s: its shipped config passes --check in the pod's environment, and rbac prints its roles, names included",
  async (file) => {
    const manifests = await manifestsOf<Manifest>(file);
    const deployment = manifests.find((m) => m.kind === "Deployment")!;
    const pod = deployment.spec!.template.spec;
    const dir = await tempDir("kubemeta-rbac-pod-");
    dirs.push(dir);
    // The pod's volume for the store is a folder here; its libSQL server (the Secret kubemeta-libsql) the test's.
    const claimed = pod.volumes.filter((volume) => volume.persistentVolumeClaim).map((volume) => volume.name);
    let shipped = shippedConfig(manifests)!;
    for (const mount of pod.containers[0]!.volumeMounts.filter((m) => claimed.includes(m.name))) {
      shipped = shipped.replaceAll(`${mount.mountPath}/`, `${dir}/`);
    }
    const libsqlToken = "a-token-of-the-libsql-server";
    const libsql = startHranaServer({ path: join(dir, "remote.db"), token: libsqlToken });
    const env = podEnvironment(deployment, {
      "kubemeta-token/token": "token-from-the-secret-0123456789",
      "kubemeta-libsql/url": libsql.url,
      "kubemeta-libsql/authToken": libsqlToken,
    });
    // No kubeconfig: the pod's is its service account, which --check leaves to the start (no key names one).
    const config = await configFile(shipped);
    try {
      // The one warning is the tokens' crossing the pod network in clear, which the manifest's comment explains.
      expect(await run(["--check", "--config", config], env)).toEqual({
        exitCode: 0,
        stdout: "config is valid\n",
        stderr:
          "kubemeta: warning: http.tokens: clients send their token to 0.0.0.0 over http://, unencrypted: anyone on " +
          "the network path reads it; set http.tls, or put a TLS-terminating proxy or mesh in front\n",
      });
    } finally {
      await libsql.stop();
    }
    const { exitCode, stdout, stderr } = await run(["rbac", "--config", config], env);
    expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });
    const roles = manifests.filter((m) => m.kind === "ClusterRole" || m.kind === "Role");
    expect([Bun.YAML.parse(stdout)].flat()).toEqual(roles);
    // Each bound to the pods' ServiceAccount.
    for (const role of roles) {
      const binding = manifests.find((m) => m.kind === `${role.kind}Binding`)!;
      expect(binding.roleRef).toMatchObject({ kind: role.kind, name: role.metadata.name });
      expect(binding.subjects).toEqual([
        { kind: "ServiceAccount", name: pod.serviceAccountName, namespace: deployment.metadata.namespace! },
      ]);
    }
  },
);

test("rbac prints the ClusterRole of the config: custom resources by group, one rule per group", async () => {
  const file = await configFile(
    [
      "sources:",
      "  - type: kubernetes",
      "    resources: [pods, nodes, deployments, replicasets,",
      "      argoproj.io/v1alpha1/rollouts, v1/persistentvolumeclaims]",
    ].join("\n"),
  );
  const { exitCode, stdout, stderr } = await run(["rbac", "--config", file]);
  expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });
  expect(Bun.YAML.parse(stdout)).toEqual({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: "kubemeta" },
    rules: [
      { apiGroups: [""], resources: ["pods", "nodes", "persistentvolumeclaims"], verbs: ["list", "watch"] },
      { apiGroups: ["apps"], resources: ["deployments", "replicasets"], verbs: ["list", "watch"] },
      { apiGroups: ["argoproj.io"], resources: ["rollouts"], verbs: ["list", "watch"] },
    ],
  });
});

test("rbac, one namespace watched: its namespaced resources in a Role there, the rest in the ClusterRole", async () => {
  const file = await configFile(
    [
      "sources:",
      "  - type: kubernetes",
      "    namespace: payments",
      "    resources: [pods, nodes, namespaces, services, deployments, argoproj.io/v1alpha1/rollouts]",
    ].join("\n"),
  );
  const { exitCode, stdout, stderr } = await run(["rbac", "--config", file]);
  expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });
  const verbs = ["list", "watch"];
  expect(Bun.YAML.parse(stdout)).toEqual([
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "kubemeta" },
      rules: [
        { apiGroups: [""], resources: ["nodes", "namespaces"], verbs },
        // Its scope is for API discovery to tell: read wherever it is.
        { apiGroups: ["argoproj.io"], resources: ["rollouts"], verbs },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "kubemeta", namespace: "payments" },
      rules: [
        { apiGroups: [""], resources: ["pods", "services"], verbs },
        { apiGroups: ["apps"], resources: ["deployments"], verbs },
      ],
    },
  ]);
});

test("rbac with a config that does not validate prints the errors and exits 1", async () => {
  const file = await configFile("sources:\n  - type: kubernetes\n    resources: [pods, argoproj.io/rollouts]\n");
  const { exitCode, stdout, stderr } = await run(["rbac", "--config", file]);
  expect(exitCode).toBe(1);
  expect(stdout).toBe("");
  expect(stderr).toContain("sources[0].resources");
});

test("deploy/kubemeta-ha.yaml: its shipped config resolves to ha, and it grants what that config needs", async () => {
  const manifests = await manifestsOf<Manifest>("kubemeta-ha.yaml");
  const shipped = shippedConfig(manifests);
  expect(shipped).toBeString();
  const deployment = manifests.find((m) => m.kind === "Deployment")!;
  const pod = deployment.spec!.template.spec;
  // Every variable the config reads is one the Deployment sets: the pod's name and namespace from the downward API.
  const env = pod.containers[0]!.env!;
  for (const [, name] of shipped!.matchAll(/\$\{(\w+)\}/g)) expect(env.map((e) => e.name)).toContain(name!);
  expect(env.find((e) => e.name === "POD_NAME")?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.name");
  expect(env.find((e) => e.name === "POD_NAMESPACE")?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.namespace");

  const config = await resolveConfig(Bun.YAML.parse(shipped!), { baseDir: ROOT, registry: builtins, env: HA_ENV });
  expect(config.store.config).toEqual({ url: HA_ENV.LIBSQL_URL, authToken: HA_ENV.LIBSQL_AUTH_TOKEN, timeout: 60_000 });
  expect(config.ha).toMatchObject({
    lease: { name: "kubemeta", namespace: deployment.metadata.namespace },
    identity: HA_ENV.POD_NAME,
  });
  expect(deployment.spec!.replicas).toBeGreaterThanOrEqual(2);
  expect(pod.volumes.filter((volume) => volume.persistentVolumeClaim)).toEqual([]);

  const clusterRole = manifests.find((m) => m.kind === "ClusterRole")!;
  const role = manifests.find((m) => m.kind === "Role")!;
  expect(clusterRole.rules).toEqual(policyRules(config));
  expect(role).toEqual(Bun.YAML.parse(leaseRoleYaml(config.ha!)) as Manifest);
});

test("deploy/kubemeta-ha.yaml overwrites nothing of deploy/kubemeta.yaml but the Namespace they share", async () => {
  const key = (m: Manifest) => `${m.kind} ${m.metadata.namespace ?? ""}/${m.metadata.name}`;
  const single = new Set((await manifestsOf<Manifest>("kubemeta.yaml")).map(key));
  const shared = (await manifestsOf<Manifest>("kubemeta-ha.yaml")).map(key).filter((k) => single.has(k));
  expect(shared).toEqual(["Namespace /kubemeta"]);
});

test("rbac with ha prints the Lease's Role after the ClusterRole: deploy/kubemeta-ha.yaml's two", async () => {
  const manifests = await manifestsOf<Manifest>("kubemeta-ha.yaml");
  const file = await configFile(shippedConfig(manifests)!);
  const { exitCode, stdout, stderr } = await run(["rbac", "--config", file], HA_ENV);
  expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });
  const [clusterRole, role, ...more] = Bun.YAML.parse(stdout) as Manifest[];
  expect(more).toEqual([]);
  // Applied, it replaces this manifest's ClusterRole (bound to its ServiceAccount), not deploy/kubemeta.yaml's.
  expect(clusterRole?.metadata).toEqual({ name: "kubemeta-ha" });
  expect(role?.rules).toEqual([
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    {
      apiGroups: ["coordination.k8s.io"],
      resources: ["leases"],
      resourceNames: ["kubemeta"],
      verbs: ["get", "update"],
    },
  ]);
});

test("the Lease's Role and RoleBinding are named after the Lease: two of other Leases share none", async () => {
  const manifests = await manifestsOf<Manifest>("kubemeta-ha.yaml");
  const role = manifests.find((m) => m.kind === "Role")!;
  const binding = manifests.find((m) => m.kind === "RoleBinding")!;
  expect([role.metadata.name, binding.metadata.name, binding.roleRef?.name]).toEqual(Array(3).fill("kubemeta-lease"));
  const shipped = shippedConfig(manifests)!;
  expect(shipped).toContain("lease: { name: kubemeta }");
  const other = await configFile(shipped.replace("lease: { name: kubemeta }", "lease: { name: kubemeta-b }"));
  const { exitCode, stdout } = await run(["rbac", "--config", other], HA_ENV);
  expect(exitCode).toBe(0);
  const [, printed] = Bun.YAML.parse(stdout) as Manifest[];
  // Removing one deployment's Role takes nothing from the other's, whose Lease it does not name anyway.
  expect(printed?.metadata).toEqual({ name: "kubemeta-b-lease", namespace: "kubemeta" });
  expect(printed?.rules).toContainEqual(expect.objectContaining({ resourceNames: ["kubemeta-b"] }));
});

test("rbac with ha and no namespace for the Lease: its Role in default, a warning naming POD_NAMESPACE", async () => {
  const manifests = await manifestsOf<Manifest>("kubemeta-ha.yaml");
  const file = await configFile(shippedConfig(manifests)!);
  const outside = { ...HA_ENV, POD_NAMESPACE: "" };
  const { exitCode, stdout, stderr } = await run(["rbac", "--config", file], outside);
  expect(exitCode).toBe(0);
  expect(stderr).toBe(
    'kubemeta: warning: the Lease\'s Role is in namespace "default": neither ha.lease.namespace nor POD_NAMESPACE ' +
      "names one (set POD_NAMESPACE to the namespace the replicas run in, as their pods have it)\n",
  );
  const [, role] = Bun.YAML.parse(stdout) as Manifest[];
  expect(role?.metadata).toEqual({ name: "kubemeta-lease", namespace: "default" });
  // Named by the config, `default` is meant: no warning.
  const shipped = shippedConfig(manifests)!;
  expect(shipped).toContain("lease: { name: kubemeta }");
  const named = await configFile(
    shipped.replace("lease: { name: kubemeta }", "lease: { name: kubemeta, namespace: default }"),
  );
  expect(await run(["rbac", "--config", named], outside)).toMatchObject({ exitCode: 0, stderr: "" });
});
