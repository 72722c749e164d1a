/**
 * The test API server behind a front (http-front.ts) whose answers a test decides, with the kubernetes source started
 * on the front: an API server, proxy or ingress that answers as no kube-apiserver does.
 */
import { join } from "node:path";
import { type Answer, forward, front, kubeconfigFor, prepended } from "./http-front.ts";
import { type TestCluster, withCluster } from "./source-kubernetes-recorder.ts";

/** A cluster behind one front whose answers `answer` decides; `body` gets the front and a kubeconfig of it. */
export function behindFront(
  answer: Answer,
  body: (cluster: TestCluster, through: ReturnType<typeof front>, kubeconfig: string) => Promise<void>,
): Promise<void> {
  return withCluster(
    async (cluster) => {
      const through = front(cluster.server, answer);
      try {
        const url = through.proxy.url.href.replace(/\/$/, "");
        await body(cluster, through, await kubeconfigFor(join(cluster.kubeconfig, ".."), url, cluster.server.token));
      } finally {
        through.proxy.stop(true);
      }
    },
    { tls: false },
  );
}

/** `line` first, then the server's own watch: a line every resumed watch of pods begins with. */
export const leading =
  (line: string): Answer =>
  async (request, upstream) => {
    const answer = await forward(request, upstream);
    const resumed = upstream.pathname === "/api/v1/pods" && upstream.searchParams.has("resourceVersion");
    return resumed ? prepended(answer, `${line}\n`) : answer;
  };
