/**
 * A kubeconfig user that impersonates another (`as`, `as-groups`, `as-uid`, `as-user-extra`), as kubectl sends it:
 * the headers a TLS front on loopback sees on their way to the test API server.
 */
import { expect, test } from "bun:test";
import { createServer } from "node:net";
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
    "as-groups": ["developers"],
    "as-uid": "1234",
    "as-user-extra": { reason: ["on call"], "acme.io/team": ["payments"] },
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
    "impersonate-extra-reason": "on call",
    "impersonate-group": "developers",
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

/** The request line and headers Bun's fetch writes for `headers`, as a server on loopback reads them. */
async function onTheWire(headers: Headers): Promise<string> {
  const sent = Promise.withResolvers<string>();
  const server = createServer((socket) => {
    socket.once("data", (data) => {
      sent.resolve(data.toString());
      socket.end("HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
    });
  });
  await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
  try {
    const { port } = server.address() as { port: number };
    await fetch(`http://127.0.0.1:${port}/`, { headers, signal: AbortSignal.timeout(5000) });
    return await sent.promise;
  } finally {
    server.close();
  }
}

test("two groups, or two values of an extra key, are refused at load: Bun's fetch would send them as one", async () => {
  // kubectl sends a line for each (Go's Header.Add), and kube-apiserver reads each line as one group, one value.
  const headers = new Headers();
  headers.append("Impersonate-Group", "developers");
  headers.append("Impersonate-Group", "system:masters");
  expect(await onTheWire(headers)).toContain("\r\nImpersonate-Group: developers, system:masters\r\n");
  // Was: sent so, jane impersonated in one group named `developers, system:masters`, in neither of hers.
  const cases = {
    groups: [{ "as-groups": ["developers", "system:masters"] }, "2 groups (as-groups)"],
    extra: [{ "as-user-extra": { reason: ["on call", "paged"] } }, '2 values of the as-user-extra key "reason"'],
  } as const;
  for (const [name, [impersonating, said]] of Object.entries(cases)) {
    const user = { token: suite.server.token, as: "jane", ...impersonating };
    const file = await withCluster(suite, join(name, "config"), cluster(), user);
    expect(() => loadKubeConfig({ kubeconfig: file })).toThrow(
      `cannot load kubeconfig ${file}: user "u" impersonates ${said}: kubemeta sends one (Bun's fetch sends a ` +
        "header given twice as one line, which kube-apiserver would take for one value, `a, b`)",
    );
  }
});
