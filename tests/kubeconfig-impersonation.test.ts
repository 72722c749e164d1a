/**
 * A kubeconfig user that impersonates another (`as`, `as-groups`, `as-uid`, `as-user-extra`), as kubectl sends it:
 * the headers a TLS front on loopback sees on their way to the test API server.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { loadKubeConfig } from "../kube/load.ts";
import { b64, kubeconfigSuite, status, tlsFront, withCluster } from "./kubeconfig-fixtures.ts";

const suite = kubeconfigSuite();
const front = tlsFront(suite, ({ pathname, search }) => `${pathname}${search}`);

const cluster = () => ({ server: front.url, "certificate-authority-data": b64(suite.server.caPem) });

test("as-groups, as-uid and as-user-extra are sent beside as, as kubectl sends them", async () => {
  const user = {
    token: suite.server.token,
    as: "jane",
    "as-groups": ["developers", "system:authenticated"],
    "as-uid": "1234",
    "as-user-extra": { reason: ["on call", "paged"], "acme.io/team": ["payments"] },
  };
  const file = await withCluster(suite, join("impersonating", "config"), cluster(), user);
  expect(await status({ kubeconfig: file })).toBe(200);
  const headers = Object.fromEntries(
    [...front.seen.at(-1)!.headers].filter(([name]) => name.startsWith("impersonate-")).sort(),
  );
  // Was: Impersonate-User alone (client-node reads `as` only): jane without her groups, a user the cluster's RBAC
  // grants other rights than the kubeconfig's author meant.
  expect(headers).toEqual({
    "impersonate-extra-acme.io%2fteam": "payments",
    "impersonate-extra-reason": "on call, paged",
    "impersonate-group": "developers, system:authenticated",
    "impersonate-uid": "1234",
    "impersonate-user": "jane",
  });
});

test("groups, a uid or extra without as are refused at load, as kubectl refuses them", async () => {
  const user = { token: suite.server.token, "as-groups": ["developers"] };
  const file = await withCluster(suite, join("groups-alone", "config"), cluster(), user);
  expect(() => loadKubeConfig({ kubeconfig: file })).toThrow(
    `cannot load kubeconfig ${file}: user "u" impersonates groups, a uid or extra without a user to impersonate ` +
      "(as; kubectl refuses it too)",
  );
});
