/** GET /v1/objects and GET /v1/updates over real HTTP (and the stream rule they share with /v1/watch). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseReplayRequest } from "../protocol/replay.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { subscribeSse } from "../client/index.ts";
import { parseTailArgs, UsageError } from "../cli/tail-args.ts";

let th: TestHost;
beforeAll(async () => {
  th = await startTestHost({ sinks: [{ type: "sse" }] });
  const node = { kind: "Node", apiVersion: "v1", metadata: { name: "n1", uid: "uid-n1", resourceVersion: "1" } };
  await th.changes.apply("nodes", "ADDED", node);
  for (let i = 0; i < 10; i++)
    await th.changes.apply(
      "pods",
      "ADDED",
      rawPod(`web-${i}`, { node: i % 2 ? "n1" : "n2", namespace: i < 6 ? "shop" : "ops" }),
    );
  await th.changes.apply("pods", "DELETED", rawPod("web-9", { node: "n1", namespace: "ops" }));
  await th.changes.flush();
});
afterAll(() => th.destroy());

async function get<T = Record<string, unknown>>(path: string): Promise<{ status: number; body: T }> {
  const response = await fetch(`${th.url}${path}`);
  return { status: response.status, body: (await response.json()) as T };
}

interface Page {
  epoch: string;
  stream: string;
  items: Envelope[];
  next: string;
  more: boolean;
}

describe("GET /v1/objects", () => {
  test("the current state, with the version it is consistent with", async () => {
    const { status, body } = await get<{ epoch: string; version: number; items: { kind: string; name: string }[] }>(
      "/v1/objects",
    );
    expect(status).toBe(200);
    expect(body.epoch).toBe(th.host.epoch);
    expect(body.version).toBe(12);
    expect(body.items).toHaveLength(10);
    expect(body.items.map((o) => o.name)).not.toContain("web-9");
  });

  test("kind, namespace, node and stream filters", async () => {
    const names = async (query: string) =>
      (await get<{ items: { name: string }[] }>(`/v1/objects?${query}`)).body.items.map((o) => o.name).toSorted();
    expect(await names("kind=Node")).toEqual(["n1"]);
    expect(await names("kind=Pod&namespace=ops")).toEqual(["web-6", "web-7", "web-8"]);
    expect(await names("kind=Pod&node=n1")).toEqual(["web-1", "web-3", "web-5", "web-7"]);
    expect(await names("kind=Node,Pod&namespace=ops&node=n1")).toEqual(["web-7"]);
    expect(await names("stream=node/n1")).toEqual(["n1", "web-1", "web-3", "web-5", "web-7"]);
  });

  test("each item's stream is the one besides all it is in: shared, node/<name>, or null (all only)", async () => {
    const other = await startTestHost({ sinks: [{ type: "sse" }] });
    try {
      await other.changes.apply("pods", "ADDED", rawPod("placed", { node: "n1" }));
      await other.changes.apply("pods", "ADDED", rawPod("pending"));
      const namespace = { kind: "Namespace", apiVersion: "v1", metadata: { name: "shop", uid: "uid-shop" } };
      await other.changes.apply("namespaces", "ADDED", namespace);
      await other.changes.flush();
      const body = (await (await fetch(`${other.url}/v1/objects`)).json()) as { items: Record<string, unknown>[] };
      const streams = Object.fromEntries(body.items.map((item) => [item.name, [item.stream, item.node]]));
      expect(streams).toEqual({ placed: ["node/n1", "n1"], pending: [null, null], shop: ["shared", null] });
    } finally {
      await other.destroy();
    }
  });

  test("bad values: 400 naming the parameter; unknown stream 404", async () => {
    expect(await get("/v1/objects?kind=pods")).toMatchObject({ status: 400, body: { parameter: "kind" } });
    const wrongCase = await get("/v1/objects?kind=POD");
    expect(wrongCase.status).toBe(400);
    expect(wrongCase.body).toMatchObject({ parameter: "kind" });
    expect(String(wrongCase.body.error)).toContain("POD must be written Pod: a kind is case-sensitive");
    // /v1/watch's spelling is refused, not ignored (which answered every kind).
    expect(await get("/v1/objects?kinds=Pod")).toMatchObject({
      status: 400,
      body: { parameter: "kinds", error: expect.stringMatching(/this route takes kind, not this spelling/) },
    });
    expect(await get("/v1/objects?namespace=")).toMatchObject({ status: 400, body: { parameter: "namespace" } });
    // A node no object can be on is said, not answered with an empty list (its stream is a 404 likewise).
    for (const node of ["Bad_Name", "", "a%00b"]) {
      expect(await get(`/v1/objects?node=${node}`)).toMatchObject({ status: 400, body: { parameter: "node" } });
    }
    expect(await get("/v1/objects?stream=nodes")).toMatchObject({ status: 404, body: { parameter: "stream" } });
    // Likewise a namespace no object can be in: a namespace's name is a DNS-1123 label.
    for (const namespace of ["Shop", "NOT_VALID!!", "a.b", "x".repeat(64)]) {
      const answer = await get(`/v1/objects?namespace=${namespace}`);
      expect(answer).toMatchObject({ status: 400, body: { parameter: "namespace" } });
    }
  });

  test("a filter another route takes is a 400 saying what to write, not ignored (which answered all)", async () => {
    for (const [path, parameter, instead] of [
      ["/v1/watch?kind=Pod", "kind", /takes kinds/],
      ["/v1/watch?node=n1", "node", /takes stream=node\/<node name>/],
      // The webhook's plural spelling: one namespace is all a route filters by.
      ["/v1/watch?namespaces=shop", "namespaces", /takes namespace, not this spelling/],
      ["/v1/objects?namespaces=shop", "namespaces", /takes namespace, not this spelling/],
      ["/v1/updates?namespaces=shop", "namespaces", /filters nothing/],
      ["/v1/updates?kind=Pod", "kind", /filters nothing/],
      ["/v1/updates?kinds=Pod", "kinds", /filters nothing/],
      ["/v1/updates?namespace=shop", "namespace", /filters nothing/],
      ["/v1/updates?node=n1", "node", /stream=node\/<node name> for a node's/],
      // /v1/updates' paging: the state comes whole, as of one version, which a follow-up's since takes.
      ["/v1/objects?since=e:0", "since", /answers the whole current state: follow on from its version with since/],
      [
        "/v1/objects?limit=10",
        "limit",
        /answers the whole current state, in pages it streams: limit pages \/v1\/updates/,
      ],
      // Was ignored: `?limit=10` asked for ten events and got the whole stream, for good.
      ["/v1/watch?limit=10", "limit", /a stream has no end to limit: limit pages \/v1\/updates/],
    ] as const) {
      expect({ path, ...(await get(path)) }).toMatchObject({
        path,
        status: 400,
        body: { parameter, error: expect.stringMatching(instead) },
      });
    }
  });

  test("a parameter given twice is a 400 naming it, on every route, rather than the first value taken", async () => {
    const epoch = (await get<{ epoch: string }>("/v1/objects")).body.epoch;
    for (const [path, parameter] of [
      ["/v1/objects?kind=Pod&kind=Node", "kind"],
      ["/v1/objects?namespace=a&namespace=b", "namespace"],
      ["/v1/objects?node=n1&node=n1", "node"],
      ["/v1/objects?stream=all&stream=shared", "stream"],
      [`/v1/updates?since=${epoch}:0&since=${epoch}:1`, "since"],
      ["/v1/updates?limit=1&limit=2", "limit"],
      ["/v1/watch?kinds=Pod&kinds=Node", "kinds"],
      [`/v1/watch?since=${epoch}:0&since=${epoch}:1`, "since"],
    ]) {
      expect([path, await get(path!)]).toEqual([
        path,
        { status: 400, body: { error: `${parameter}: given more than once; it takes one value`, parameter } },
      ]);
    }
    // One the route does not read stays ignored, as it is once.
    expect((await get("/v1/objects?cachebuster=1&cachebuster=2")).status).toBe(200);
  });

  test("a kind given twice is refused by every route and by the client library, in the same words", async () => {
    const refusal = (parameter: string) => ({
      status: 400,
      body: { error: `${parameter}: "Pod" is given twice`, parameter },
    });
    expect(await get("/v1/objects?kind=Pod,Pod")).toEqual(refusal("kind"));
    expect(await get("/v1/objects?kind=Pod,Node,%20Pod")).toEqual(refusal("kind"));
    expect(await get("/v1/watch?kinds=Pod,Node,Pod")).toEqual(refusal("kinds"));
    expect(() => subscribeSse({ url: th.url, streams: ["all"], kinds: ["Pod", "Node", "Pod"] })).toThrow(
      new RangeError(refusal("kinds").body.error),
    );
    expect(() => parseTailArgs(["--url", th.url, "--kinds", "Pod,Pod"], {})).toThrow(
      new UsageError(`--kinds: "Pod" is given twice`),
    );
    expect(await get("/v1/objects?kind=Pod,Node")).toMatchObject({ status: 200 });
  });

  test("a value that is not percent-encoded UTF-8 is a 400 naming its parameter, not taken as written", async () => {
    expect(await get("/v1/updates?since=%FF:1")).toMatchObject({ status: 400, body: { parameter: "since" } });
    expect(await get("/v1/objects?namespace=%C3")).toMatchObject({ status: 400, body: { parameter: "namespace" } });
    // A stream's name that does not decode names no stream, on every route, as one too long (README, Errors).
    for (const route of ["/v1/watch", "/v1/objects", "/v1/updates"])
      expect(await get(`${route}?stream=node/%FF`)).toMatchObject({ status: 404, body: { parameter: "stream" } });
    // Well encoded, as before.
    expect((await get("/v1/objects?namespace=sh%6Fp")).status).toBe(200);
  });

  test("every parameter is bounded in length, one it does not read too: 400 naming it", async () => {
    const long = "a".repeat(2049);
    for (const path of ["/v1/objects", "/v1/updates", "/v1/watch"]) {
      expect(await get(`${path}?cachebuster=${long}`)).toEqual({
        status: 400,
        body: { error: "cachebuster: at most 2048 characters", parameter: "cachebuster" },
      });
      // At the bound, an unknown parameter is ignored as before.
      expect((await get(`/v1/objects?cachebuster=${long.slice(1)}`)).status).toBe(200);
    }
  });
});

describe("GET /v1/updates", () => {
  test("pages through a stream with the next cursor until it is caught up", async () => {
    const seen: number[] = [];
    let path = "/v1/updates?stream=all&limit=5";
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(5);
      const { status, body } = await get<Page>(path);
      expect(status).toBe(200);
      seen.push(...body.items.map((u) => u.version));
      for (const u of body.items) expect(u).toMatchObject({ epoch: th.host.epoch, stream: "all", prev: u.version - 1 });
      if (!body.more) {
        expect(body.next).toBe(`${th.host.epoch}:12`);
        break;
      }
      path = `/v1/updates?stream=all&limit=5&since=${body.next}`;
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    // A full page that reaches the head is the last: no empty page to ask for.
    const full = await get<Page>(`/v1/updates?stream=all&limit=6&since=${th.host.epoch}:6`);
    expect(full.body).toMatchObject({ more: false, next: `${th.host.epoch}:12` });
    expect(full.body.items.map((u) => u.version)).toEqual([7, 8, 9, 10, 11, 12]);
  });

  test("a node stream: its updates and its prev chain; an empty page still moves the cursor to the head", async () => {
    const { body } = await get<Page>("/v1/updates?stream=node/n1");
    expect(body.items.map((u) => [u.version, u.prev, u.type])).toEqual([
      [1, 0, "ADDED"],
      [3, 1, "ADDED"],
      [5, 3, "ADDED"],
      [7, 5, "ADDED"],
      [9, 7, "ADDED"],
      [11, 9, "ADDED"],
      [12, 11, "DELETED"],
    ]);
    const empty = await get<Page>(`/v1/updates?stream=node/n1&since=${th.host.epoch}:12`);
    expect(empty.body).toMatchObject({ items: [], more: false, next: `${th.host.epoch}:12` });
    const quiet = await get<Page>(`/v1/updates?stream=node/nobody&since=${th.host.epoch}:3`);
    expect(quiet.body).toMatchObject({ items: [], next: `${th.host.epoch}:12` });
  });

  test("limit has an upper bound; bad values are 400 naming the parameter; unknown stream 404", async () => {
    expect((await get<Page>("/v1/updates?limit=5000")).status).toBe(200);
    for (const [query, parameter] of [
      ["limit=5001", "limit"],
      ["limit=0", "limit"],
      ["limit=ten", "limit"],
      // Leading zeros are refused in `limit` as in `since`'s version.
      ["limit=010", "limit"],
      ["limit=00", "limit"],
      [`since=${th.host.epoch}:01`, "since"],
      ["since=5", "since"],
      ["since=:5", "since"],
      // An epoch is visible ASCII: a control character is bad input, not an unknown epoch (410).
      ["since=%00:1", "since"],
      ["since=ab%09c:1", "since"],
      ["since=%C3%A9:1", "since"],
    ]) {
      expect(await get(`/v1/updates?${query}`)).toMatchObject({ status: 400, body: { parameter } });
    }
    expect(await get("/v1/updates?stream=node/")).toMatchObject({ status: 404, body: { parameter: "stream" } });
    expect((await get("/v1/updates?limit=010")).body).toEqual({
      error: "limit: expected a positive integer, without leading zeros",
      parameter: "limit",
    });
  });

  test("one stream-name rule for every entry point: a node stream must name a legal node name", async () => {
    const illegal = ["node/a%0Ab", "node/a%00b", `node/${"a".repeat(254)}`, "node/Upper.Case", "node/a_b", "node/-a"];
    for (const stream of illegal) {
      for (const path of ["/v1/objects", "/v1/updates", "/v1/watch"]) {
        expect({ path, stream, ...(await get(`${path}?stream=${stream}`)) }).toMatchObject({
          status: 404,
          body: { parameter: "stream" },
        });
      }
      expect(() => parseReplayRequest(JSON.stringify({ stream: decodeURIComponent(stream) }))).toThrow(
        /stream must be/,
      );
    }
    expect((await get(`/v1/updates?stream=node/${"a".repeat(63)}.example.com`)).status).toBe(200);
  });

  test(
    "a cursor of another epoch, ahead of the log or past retention is 410 Gone: " + "take /v1/objects instead",
    async () => {
      expect(await get("/v1/updates?since=0123456789abcdef:3")).toMatchObject({
        status: 410,
        body: { parameter: "since", epoch: th.host.epoch },
      });
      expect(await get(`/v1/updates?since=${th.host.epoch}:13`)).toMatchObject({ status: 410 });
      const pruned = await startTestHost({ retention: { maxUpdates: 2, interval: 50 } });
      try {
        for (let i = 0; i < 5; i++) await pruned.changes.apply("pods", "ADDED", rawPod(`p${i}`));
        await pruned.changes.flush();
        await waitFor(() => pruned.host.log.oldest() > 1, 5000, "retention to prune");
        const gone = await fetch(`${pruned.url}/v1/updates?since=${pruned.host.epoch}:0`);
        expect(gone.status).toBe(410);
        expect(((await gone.json()) as { error: string }).error).toContain("older than retention");
        const fromOldest = (await (await fetch(`${pruned.url}/v1/updates`)).json()) as Page;
        expect(fromOldest.items[0]!.version).toBe(pruned.host.log.oldest());
      } finally {
        await pruned.destroy();
      }
    },
  );

  test("a cursor a little ahead of this replica's log (another's, further on) is waited for, not 410", async () => {
    const ahead = await startTestHost();
    try {
      await ahead.changes.apply("pods", "ADDED", rawPod("a"));
      await ahead.changes.flush();
      const page = fetch(`${ahead.url}/v1/updates?stream=all&since=${ahead.host.epoch}:2`).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as Page,
      }));
      // Not answered while the log is behind the cursor (a 410 came at once).
      expect(await Promise.race([page, Bun.sleep(300).then(() => "waiting")])).toBe("waiting");
      await ahead.changes.apply("pods", "ADDED", rawPod("b"));
      await ahead.changes.flush();
      // Version 2 reached: nothing after it yet, and the next page starts there.
      const next = `${ahead.host.epoch}:2`;
      expect(await page).toMatchObject({ status: 200, body: { items: [], next } });
    } finally {
      await ahead.destroy();
    }
  });
});
