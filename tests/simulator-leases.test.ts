/**
 * The test API server's Leases answer as kube-apiserver's do, because leader election (kube/election.ts) is only
 * safe if the server refuses what a real one refuses: a write from a stale resourceVersion (409 Conflict), a create
 * of a name that exists (409 AlreadyExists), a replace without a resourceVersion (422). Status bodies are held to
 * the shape of the real captures in tests/fixtures/k8s/real/; the Lease client (kube/lease.ts) is tested on top.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { KubeConfig } from "@kubernetes/client-node";
import { apiFetch, keysOf, realFixture, WatchReader } from "./apiserver-client.ts";
import { ApiError } from "../kube/status.ts";
import { createLeaseClient, isConflict, microTime, type Lease } from "../kube/lease.ts";
import { createTransport } from "../kube/transport.ts";
import { createMetrics } from "../host/metrics.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";

const GROUP_VERSION = "/apis/coordination.k8s.io/v1";
const LEASES = `${GROUP_VERSION}/namespaces/kube-system/leases`;

let server: TestApiServer;
beforeAll(async () => {
  server = await startTestApiServer();
});
afterAll(() => server.stop());

/** A request with the server's token (or none), a JSON body, and the parsed answer. */
async function call(method: string, path: string, body?: unknown, token: string | undefined = server.token) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    tls: { ca: server.caPem },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> & Lease };
}

const lease = (name: string, spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}) => ({
  apiVersion: "coordination.k8s.io/v1",
  kind: "Lease",
  metadata: { name, ...metadata },
  spec,
});

const failureStatus = (code: number, reason: string, message: string, details: object) => ({
  kind: "Status",
  apiVersion: "v1",
  metadata: {},
  status: "Failure",
  message,
  reason,
  details,
  code,
});

describe("Lease routes", () => {
  test("discovery serves coordination.k8s.io/v1 with namespaced leases and the registry's verbs", async () => {
    const groups = (await (await apiFetch(server, "/apis")).json()) as { groups: Array<{ name: string }> };
    const real = await realFixture<{ groups: Array<{ name: string }> }>("kind-v1.36.2/APIGroupList.json");
    const coordination = (list: typeof groups) => list.groups.find((group) => group.name === "coordination.k8s.io");
    expect(coordination(groups)).toEqual(coordination(real)!);
    const resources = (await (await apiFetch(server, GROUP_VERSION)).json()) as { resources: object[] };
    expect(resources.resources).toEqual([
      {
        name: "leases",
        singularName: "lease",
        namespaced: true,
        kind: "Lease",
        verbs: ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        storageVersionHash: expect.any(String),
      },
    ]);
  });

  test("GET of a missing Lease is the real 404 NotFound Status", async () => {
    const { status, body } = await call("GET", `${LEASES}/missing`);
    expect(status).toBe(404);
    expect(body as object).toEqual(
      failureStatus(404, "NotFound", 'leases.coordination.k8s.io "missing" not found', {
        name: "missing",
        group: "coordination.k8s.io",
        kind: "leases",
      }),
    );
  });

  test("POST creates (201) with server metadata and MicroTimes rewritten; again is 409 AlreadyExists", async () => {
    const spec = { leaseTransitions: 0, holderIdentity: "a", renewTime: "2026-01-02T03:04:05.5+01:00", x: 1 };
    const created = await call("POST", LEASES, lease("created", spec, { uid: "mine", resourceVersion: "7" }));
    expect(created.status).toBe(201);
    expect(keysOf(created.body)).toEqual(["kind", "apiVersion", "metadata", "spec"]);
    expect(created.body.metadata).toMatchObject({ name: "created", namespace: "kube-system" });
    expect(created.body.metadata.uid).not.toBe("mine");
    expect(created.body.metadata.resourceVersion).toBe(server.resourceVersion());
    // LeaseSpec's Go field order; MicroTime in UTC with six digits; unknown fields dropped.
    expect(JSON.stringify(created.body.spec)).toBe(
      '{"holderIdentity":"a","renewTime":"2026-01-02T02:04:05.500000Z","leaseTransitions":0}',
    );
    expect((await call("GET", `${LEASES}/created`)).body).toEqual(created.body);

    const again = await call("POST", LEASES, lease("created"));
    expect(again.status).toBe(409);
    expect(again.body as object).toEqual(
      failureStatus(409, "AlreadyExists", 'leases.coordination.k8s.io "created" already exists', {
        name: "created",
        group: "coordination.k8s.io",
        kind: "leases",
      }),
    );
  });

  test(
    "PUT from the current resourceVersion bumps it; from a stale one is the real 409 Conflict; " +
      "without one is 422; a PUT that changes nothing writes nothing",
    async () => {
      const first = (await call("POST", LEASES, lease("updated", { holderIdentity: "a" }))).body;
      const renewed = await call("PUT", `${LEASES}/updated`, { ...first, spec: { holderIdentity: "b" } });
      expect(renewed.status).toBe(200);
      expect(Number(renewed.body.metadata.resourceVersion)).toBeGreaterThan(Number(first.metadata.resourceVersion));
      expect(renewed.body.metadata.uid).toBe(first.metadata.uid);
      expect(renewed.body.spec).toEqual({ holderIdentity: "b" });

      const stale = await call("PUT", `${LEASES}/updated`, { ...first, spec: { holderIdentity: "c" } });
      expect(stale.status).toBe(409);
      expect(stale.body as object).toEqual(
        failureStatus(
          409,
          "Conflict",
          'Operation cannot be fulfilled on leases.coordination.k8s.io "updated": ' +
            "the object has been modified; please apply your changes to the latest version and try again",
          { name: "updated", group: "coordination.k8s.io", kind: "leases" },
        ),
      );
      const unconditional = await call("PUT", `${LEASES}/updated`, lease("updated", { holderIdentity: "c" }));
      expect(unconditional.status).toBe(422);
      expect(unconditional.body).toMatchObject({
        reason: "Invalid",
        message:
          'leases.coordination.k8s.io "updated" is invalid: ' +
          "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
      });
      expect(keysOf(unconditional.body)).toEqual(
        keysOf(await realFixture("kind-v1.36.2/core.v1.Status.Invalid-422.json")),
      );

      const rv = server.resourceVersion();
      const same = await call("PUT", `${LEASES}/updated`, renewed.body);
      expect(same.status).toBe(200);
      expect(same.body).toEqual(renewed.body);
      expect(server.resourceVersion()).toBe(rv);
    },
  );

  test("PUT to a missing Lease creates it (its strategy allows create on update); DELETE answers Success", async () => {
    const created = await call("PUT", `${LEASES}/put-created`, lease("put-created", { holderIdentity: "a" }));
    expect(created.status).toBe(201);
    const deleted = await call("DELETE", `${LEASES}/put-created`);
    expect(deleted.status).toBe(200);
    const real = await realFixture<{ details: object }>("kind-v1.36.2/core.v1.Status.Success-delete.json");
    expect(deleted.body as object).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Success",
      details: { name: "put-created", group: "coordination.k8s.io", kind: "leases", uid: created.body.metadata.uid },
    });
    expect(keysOf(deleted.body.details)).toEqual(keysOf(real.details));
    expect((await call("DELETE", `${LEASES}/put-created`)).status).toBe(404);
  });

  test("what a real server refuses: bad values, mismatched names, no token, other types, cluster-wide", async () => {
    const invalid = await call("POST", LEASES, lease("bad", { leaseDurationSeconds: 0, leaseTransitions: -1 }));
    expect(invalid.status).toBe(422);
    expect(invalid.body.message).toBe(
      'Lease.coordination.k8s.io "bad" is invalid: [spec.leaseDurationSeconds: Invalid value: 0: ' +
        "must be greater than 0, spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0]",
    );
    const wrongType = await call("POST", LEASES, lease("bad", { leaseDurationSeconds: "15" }));
    expect(wrongType).toMatchObject({ status: 400, body: { reason: "BadRequest" } });
    const mismatch = await call("PUT", `${LEASES}/one`, lease("other"));
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.message).toBe("the name of the object (other) does not match the name on the URL (one)");
    expect((await call("POST", LEASES, "{not json")).status).toBe(400);
    expect((await call("POST", LEASES, lease("anonymous"), "")).status).toBe(401);
    expect((await call("POST", `${GROUP_VERSION}/leases`, lease("cluster-wide"))).status).toBe(405);
    expect((await call("POST", "/api/v1/namespaces/default/pods", { metadata: { name: "p" } })).status).toBe(405);
    expect((await call("GET", `${LEASES}/anonymous`)).status).toBe(404);
  });

  test("watches see Lease writes, and requests() counts them by verb", async () => {
    server.resetRequests();
    const watch = await WatchReader.open(server, `${LEASES}?watch=1&resourceVersion=${server.resourceVersion()}`);
    try {
      const created = (await call("POST", LEASES, lease("watched", { holderIdentity: "a" }))).body;
      await call("PUT", `${LEASES}/watched`, { ...created, spec: { holderIdentity: "b" } });
      await call("DELETE", `${LEASES}/watched`);
      const events = await watch.until((event) => event.type === "DELETED");
      expect(
        events.map((event) => [event.type, (event.object.spec as { holderIdentity: string }).holderIdentity]),
      ).toEqual([
        ["ADDED", "a"],
        ["MODIFIED", "b"],
        ["DELETED", "b"],
      ]);
    } finally {
      await watch.close();
    }
    expect(server.requests()).toMatchObject({ "create leases": 1, "update leases": 1, "delete leases": 1 });
  });
});

describe("the Lease client (kube/lease.ts)", () => {
  test("get is undefined for a missing Lease; create and update return it; 409s are conflicts", async () => {
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig("token"));
    const requests = createMetrics().counter("kubemeta_ha_lease_requests_total", "The Lease's requests.");
    const client = createLeaseClient(
      createTransport(kc, () => kc),
      "kube-system",
      "client",
      requests,
    );
    const signal = AbortSignal.timeout(5000);
    expect(await client.get(signal)).toBeUndefined();
    const now = microTime(new Date("2026-12-04T05:00:00.123Z"));
    expect(now).toBe("2026-12-04T05:00:00.123000Z");
    const created = await client.create({ holderIdentity: "a", leaseDurationSeconds: 15, renewTime: now }, signal);
    expect(created.spec).toEqual({ holderIdentity: "a", leaseDurationSeconds: 15, renewTime: now });
    expect(await client.get(signal)).toEqual(created);

    const exists = await client.create({ holderIdentity: "b" }, signal).catch((error: unknown) => error);
    expect(isConflict(exists)).toBe(true);
    expect((exists as ApiError).reason).toBe("AlreadyExists");

    const updated = await client.update(created, { ...created.spec, holderIdentity: "b" }, signal);
    expect(updated.spec.holderIdentity).toBe("b");
    const stale = await client.update(created, { holderIdentity: "c" }, signal).catch((error: unknown) => error);
    expect(stale).toBeInstanceOf(ApiError);
    expect(isConflict(stale)).toBe(true);
    expect((stale as ApiError).message).toContain("the object has been modified");
    expect((await client.get(signal))?.spec.holderIdentity).toBe("b");
    const counted = (verb: string, code: string) => requests.get({ verb, code });
    expect([counted("get", "404"), counted("get", "200"), counted("create", "201"), counted("create", "409")]).toEqual([
      1, 2, 1, 1,
    ]);
    expect([counted("update", "200"), counted("update", "409")]).toEqual([1, 1]);
  });

  test("a request not answered is counted error, one without credentials credentials; one stopped not", async () => {
    const requests = createMetrics().counter("kubemeta_ha_lease_requests_total", "The Lease's requests.");
    const clientOf = (yaml: string) => {
      const kc = new KubeConfig();
      kc.loadFromString(yaml);
      return createLeaseClient(
        createTransport(kc, () => kc),
        "kube-system",
        "counted",
        requests,
      );
    };
    const closed = Bun.serve({ port: 0, fetch: () => new Response() });
    const nowhere = server.kubeconfig("token").replace(server.url, `http://127.0.0.1:${closed.port}`);
    await closed.stop(true);
    await expect(clientOf(nowhere).get(AbortSignal.timeout(5000))).rejects.toThrow();
    const noCredentials = server.kubeconfig("token").replace(/token: .*/, "exec: { command: /nonexistent/plugin }");
    await expect(clientOf(noCredentials).create({}, AbortSignal.timeout(5000))).rejects.toThrow("/nonexistent/plugin");
    const stopping = new AbortController();
    stopping.abort();
    const metadata = { name: "counted", namespace: "kube-system", resourceVersion: "1" };
    const read: Lease = { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata, spec: {} };
    await expect(clientOf(server.kubeconfig("token")).update(read, {}, stopping.signal)).rejects.toThrow();
    expect(requests.get({ verb: "get", code: "error" })).toBe(1);
    expect(requests.get({ verb: "create", code: "credentials" })).toBe(1);
    expect(
      requests.get({ verb: "update", code: "error" }) + requests.get({ verb: "update", code: "credentials" }),
    ).toBe(0);
  });
});

test("a Lease answer that never ends is given up past 1 MiB, not read until memory runs out", async () => {
  // A 200 whose body goes on for good, as a proxy's download or a misrouted stream would.
  const chunk = new TextEncoder().encode(`{"metadata":{"name":"x"},"pad":"${"x".repeat(64 * 1024)}`);
  const endless = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: () => new Response(new ReadableStream({ pull: (controller) => controller.enqueue(chunk) })),
  });
  try {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: endless.url.href.replace(/\/$/, "") }],
      users: [{ name: "u", token: "t" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const requests = createMetrics().counter("kubemeta_ha_lease_requests_total", "The Lease's requests.");
    const client = createLeaseClient(
      createTransport(kc, () => kc),
      "default",
      "endless",
      requests,
    );
    await expect(client.get(AbortSignal.timeout(10_000))).rejects.toThrow("the Lease's answer ran past 1 MiB");
  } finally {
    endless.stop(true);
  }
});
