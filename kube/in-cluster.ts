/**
 * The in-cluster kubeconfig, from the pod's service account, as client-go's rest.InClusterConfig makes it: load.ts
 * takes it before `KUBECONFIG` and `~/.kube/config` when the pod's environment and token are there.
 */
import { existsSync } from "node:fs";
import { KubeConfig } from "@kubernetes/client-node";
import type { Impersonation } from "./impersonation.ts";
import { checkTlsMaterial } from "./tls-files.ts";

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
export const IN_CLUSTER = "in-cluster service account";

/** In a pod: `KUBERNETES_SERVICE_HOST` and `_PORT` set, and the service account's token under `root`. */
export function inPod(root: string): boolean {
  const env = process.env;
  return Boolean(env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(tokenFile(root)));
}

const tokenFile = (root: string) => `${root}${SERVICE_ACCOUNT_DIR}/token`;

/**
 * The service account's kubeconfig (`root` prefixes its folder, client-node's `loadFromCluster(pathPrefix)`, for
 * tests), and what the start warns of: a `ca.crt` that cannot be used (missing, unreadable, no PEM certificate) is
 * left out, so that the API server's certificate is checked against the system's CAs, as client-go does (it logs
 * the error and goes on), rather than no request ever leaving.
 */
export function inClusterConfig(root: string) {
  const kc = new KubeConfig();
  kc.loadFromCluster(root);
  // Its token file read as a kubeconfig's (token-file.ts), not by client-node's authenticator: with readFileSync,
  // untrimmed, and once a minute at most, a token rotated meanwhile sent only after the old one is refused.
  const { name } = kc.getCurrentUser()!;
  kc.users = [{ name }];
  // client-go's in-cluster server is https:// on any port; client-node's is http:// on 80, 8080 and 8001, which
  // would send the token in clear to a server that speaks TLS alone.
  const [cluster] = kc.clusters;
  kc.clusters = [{ ...cluster!, server: cluster!.server.replace(/^http:/, "https:") }];
  const warnings: string[] = [];
  try {
    checkTlsMaterial(kc);
  } catch (error) {
    kc.clusters = [{ ...kc.clusters[0]!, caFile: undefined }];
    warnings.push(
      `${IN_CLUSTER}: ${(error as Error).message}; the API server's certificate is checked against the system's ` +
        "CAs instead, as kubectl does",
    );
  }
  const tokenFiles = new Map([[name, tokenFile(root)]]);
  const none = { impersonations: new Map<string, Impersonation>(), execExtensions: new Map<string, unknown>() };
  return { kc, origin: IN_CLUSTER, files: IN_CLUSTER, tokenFiles, warnings, ...none };
}
