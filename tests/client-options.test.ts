/**
 * The client library's options, checked at the call before anything is opened: what the server would refuse on every
 * reconnect, an option that is none, a value of another type, a duration no timer waits, a stream given twice. Each
 * is a TypeError or RangeError naming the option (client/options.ts and the schemas of client/sse-options.ts and
 * client/nats.ts).
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { subscribeNats, subscribeSse } from "../client/index.ts";
import { SHARED } from "../protocol/streams.ts";
import { recorder } from "./client-recorder.ts";
import { client, CLUSTER, PREFIX, SLOW_MS } from "./nats-fixtures.ts";
import { startNatsServer, type TestNatsServer } from "./nats-server.ts";

let server: TestNatsServer;
const connections: NatsConnection[] = [];

beforeAll(async () => {
  server = await startNatsServer();
}, SLOW_MS);
afterEach(async () => {
  for (const nc of connections.splice(0)) await nc.close();
});
afterAll(async () => {
  await server?.destroy();
});

type SseOptions = Parameters<typeof subscribeSse>[0];

/** Expects subscribeSse to throw `type` with `message` for each of `bad`, given with sound url and streams. */
function expectRefused(bad: [Record<string, unknown>, ErrorConstructor, RegExp][]): void {
  for (const [options, type, message] of bad) {
    const given = { url: "http://127.0.0.1:9", streams: ["all"], ...recorder().handlers, ...options } as SseOptions;
    expect(() => subscribeSse(given)).toThrow(type);
    expect(() => subscribeSse(given)).toThrow(message);
  }
}

test("options the server would refuse on every reconnect are refused at once, as over NATS", () =>
  expectRefused([
    [{ url: "localhost:8080" }, RangeError, /^url: /],
    [{ url: "ftp://h/" }, RangeError, /^url: /],
    [{ url: undefined }, TypeError, /^url: give kubemeta's http:\/\/ or https:\/\/ base URL/],
    [{ streams: [] }, RangeError, /^streams: give at least one stream/],
    [{ streams: undefined }, TypeError, /^streams: give at least one stream/],
    [{ streams: ["bogus"] }, RangeError, /^streams\[0\]: "bogus" is not a stream/],
    [{ streams: ["all", "node/Bad_Name"] }, RangeError, /^streams\[1\]: "node\/Bad_Name" is not a stream/],
    [{ kinds: ["pods"] }, RangeError, /^kinds\[0\]: pods is not an API kind/],
    [
      { kinds: ["HttpRoute"] },
      RangeError,
      /^kinds\[0\]: HttpRoute must be written HTTPRoute: a kind is case-sensitive/,
    ],
    [{ kinds: "Pod" }, TypeError, /^kinds: a list/],
    // `kinds=` is a 400: no kinds is not all of them.
    [{ kinds: [] }, RangeError, /^kinds: give at least one/],
    // A timer given more than 2^31-1 ms fires after 1 ms: every connection would be cut at once.
    [{ idleTimeoutMs: 3e9 }, RangeError, /^idleTimeoutMs: /],
    [{ idleTimeoutMs: 0 }, RangeError, /^idleTimeoutMs: /],
    [{ reconnect: { initialMs: 2_000, maxMs: 1_000 } }, RangeError, /^reconnect: initialMs 2000 is above maxMs 1000/],
    [{ reconnect: { initialMs: 20_000 } }, RangeError, /^reconnect: initialMs 20000 is above the default maxMs 10000/],
    [{ reconnect: { maxMs: 100 } }, RangeError, /^reconnect: the default initialMs 250 is above maxMs 100$/],
    [{ reconnect: { maxMs: Number.NaN } }, TypeError, /^reconnect\.maxMs: /],
    [{ namespace: "" }, RangeError, /^namespace: /],
    // What the server refuses with a 400 on every reconnect.
    [{ namespace: "Payments" }, RangeError, /^namespace: "Payments" is not a namespace's name/],
  ]));

test("subscribeSse: an option that is none, of another type, a fraction of a ms, a stream twice", () =>
  expectRefused([
    [{ tokn: "x" }, TypeError, /^tokn: not an option of subscribeSse \(url, streams, .*\)/],
    [
      { reconnect: { initial: 100 } },
      TypeError,
      /^reconnect\.initial: not an option of a backoff \(initialMs, maxMs\)/,
    ],
    [{ reconnect: 100 }, TypeError, /^reconnect: a backoff takes an object/],
    [{ streams: ["all", "node/n1", "all"] }, RangeError, /^streams: "all" is given twice/],
    [{ kinds: ["Pod", "Node", "Pod"] }, RangeError, /^kinds: "Pod" is given twice/],
    [{ streams: ["all", 5] }, TypeError, /^streams\[1\]: 5 is not a stream/],
    // Neither quotes the token.
    [{ token: 1234567890123456 }, TypeError, /^token: a bearer token is a string$/],
    [{ token: "" }, RangeError, /^token: a bearer token is printable ASCII without spaces, and not empty$/],
    [{ token: "abc def\n" }, RangeError, /^token: a bearer token is printable ASCII without spaces, and not empty$/],
    [{ idleTimeoutMs: 1.5 }, RangeError, /^idleTimeoutMs: 1\.5 is not a whole number of milliseconds from 1 to/],
    [{ idleTimeoutMs: -5 }, RangeError, /^idleTimeoutMs: -5 is not a whole number/],
    [{ idleTimeoutMs: "500" }, TypeError, /^idleTimeoutMs: "500" is not a whole number/],
    [{ reconnect: { initialMs: 10.5 } }, RangeError, /^reconnect\.initialMs: 10\.5 is not a whole number/],
    [{ headers: { "x-tenant": 7 } }, TypeError, /^headers\.x-tenant: a header's value is a string/],
    // A record takes a list as the mapping of "0", "1", …: this would send a header named 0, and no Authorization.
    [
      { headers: ["Authorization: Bearer x"] },
      TypeError,
      /^headers: an object of header values \(name: value\), not a list/,
    ],
    // The client sets the request's headers and signal itself: these would be replaced unseen.
    [
      { fetchInit: { headers: { "x-tenant": "a" } } },
      TypeError,
      /^fetchInit\.headers: give them as the `headers` option/,
    ],
    [
      { fetchInit: { signal: new AbortController().signal } },
      TypeError,
      /^fetchInit\.signal: stop\(\) ends the requests/,
    ],
    [{ onAdd: "index" }, TypeError, /^onAdd: "index" is not a function/],
    [{ cluster: "prod" }, TypeError, /^cluster: not an option of subscribeSse/],
  ]));

// A proxy's access token may ride in the query (or, after a login redirect, the fragment), a password in the userinfo.
test("subscribeSse: a url's query, fragment or credentials are refused without quoting them", () => {
  const refused: [string, RegExp][] = [
    ["https://k.example.com/kubemeta?access_token=secret-q", /^url: https:\/\/k\.example\.com\/kubemeta has a query/],
    ["https://k.example.com/#access_token=secret-f", /^url: https:\/\/k\.example\.com\/ has a query or fragment/],
    // fetch refuses these in browsers and Node, on every reconnect (Bun alone sends them).
    ["https://user:secret-pw@k.example.com/kubemeta?q=secret-q", /^url: https:\/\/k\.example\.com\/kubemeta has cred/],
    ["http://:secret-pw@k.example.com", /^url: http:\/\/k\.example\.com\/ has credentials before @/],
    // Not URLs: nothing of them can be named safely.
    ["http://user:secret-pw@k.example.com:99999", /^url: not a URL with a host \(not quoted/],
    ["http://user:secret pw@k example com/", /^url: not a URL with a host \(not quoted/],
    ["user:secret-pw@k.example.com", /^url: not a URL with a host \(not quoted/],
    ["ftp://user:secret-pw@k.example.com/x?secret-q", /^url: ftp:\/\/k\.example\.com\/x is not kubemeta's http/],
  ];
  expectRefused(refused.map(([url, message]) => [{ url }, RangeError, message]));
  for (const [url] of refused) expect(() => subscribeSse({ url, streams: ["all"] })).not.toThrow(/secret/);
});

test("subscribeSse: a header the client sets itself is refused, and an authorization header beside a token", () => {
  // fetch joins two values of one header into one ("a, b"): a Last-Event-ID the server refuses (400), a bearer
  // token no server takes (401), on every reconnect.
  expectRefused([
    [{ headers: { Accept: "application/json" } }, RangeError, /^headers: Accept: the client sets this header itself/],
    [{ headers: { "last-event-id": "e:1" } }, RangeError, /^headers: last-event-id: the client sets this header/],
    [
      { token: "s3cret", headers: { Authorization: "Basic dTpw" } },
      RangeError,
      /^headers: give a token or an authorization header, not both/,
    ],
  ]);
  // Alone, an authorization header is the caller's to send (a proxy's own credentials, say).
  const sub = subscribeSse({
    url: "http://127.0.0.1:9",
    streams: ["all"],
    headers: { Authorization: "Basic dTpw", "x-tenant": "a" },
  });
  void sub.stop();
});

test("subscribeSse: a header fetch refuses, a header named twice, a method or body the stream cannot have", () => {
  // Each failed every reconnect, reported for ever: fetch throws on the header, a POST is a 405, a GET has no body.
  expectRefused([
    [{ headers: { "x-api-key": "secret-v\r\nx-b: 1" } }, RangeError, /^headers\.x-api-key: a header's value is one /],
    [{ headers: { "x-api-key": "secret-€" } }, RangeError, /^headers\.x-api-key: a header's value is one line/],
    [{ headers: { "x tenant": "a" } }, RangeError, /^headers\.x tenant: a header's name is letters, digits and/],
    [{ headers: { "X-Tenant": "a", "x-tenant": "b" } }, RangeError, /^headers: x-tenant is named twice/],
    [{ fetchInit: { method: "POST" } }, RangeError, /^fetchInit\.method: the stream is a GET/],
    [{ fetchInit: { body: "x" } }, TypeError, /^fetchInit\.body: the stream is a GET, which has no body/],
  ]);
  const given = (headers: Record<string, string>) => ({ url: "http://127.0.0.1:9", streams: ["all"], headers });
  expect(() => subscribeSse(given({ "x-api-key": "secret-v\n" }))).not.toThrow(/secret/);
  // What fetch sends as it is: a tab, Latin-1; GET itself.
  for (const sub of [
    subscribeSse(given({ "x-tenant": "a\tb é" })),
    subscribeSse({ ...given({}), fetchInit: { method: "get", body: null } }),
  ])
    void sub.stop();
});

test(
  "streams are checked before anything is subscribed: " + "an illegal node name leaves no subscription open",
  async () => {
    const nc = await client(server);
    const publisher = await client(server);
    connections.push(nc, publisher);
    expect(() => subscribeNats({ nc, cluster: CLUSTER, streams: [SHARED, "node/Not_A_Node"] })).toThrow(RangeError);
    // A prefix no subject can start with, or no streams at all, are said as plainly.
    for (const prefix of ["kubemeta.*", "", "a b"])
      expect(() => subscribeNats({ nc, prefix, streams: [SHARED] })).toThrow(/^prefix: /);
    // No sink publishes under `_INBOX` (its config refuses it): the mistake is the prefix, whatever the inboxes.
    for (const inboxPrefix of [undefined, "_INBOX.agent-1", "agents"])
      expect(() => subscribeNats({ nc, prefix: "_INBOX", inboxPrefix, streams: [SHARED] })).toThrow(
        /^prefix: _INBOX is where NATS clients take their replies/,
      );
    // An inbox prefix with a space would reach the server in a SUB line, which closes the connection.
    for (const inboxPrefix of ["my inbox", "_INBOX.>", "", PREFIX, `${PREFIX}.inbox`])
      expect(() => subscribeNats({ nc, cluster: CLUSTER, inboxPrefix, streams: [SHARED] })).toThrow(/^inboxPrefix: /);
    // A timer given more than 2^31-1 ms fires after 1 ms: a recheck so long would ask for replays without end.
    for (const recheckMs of [-1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, 1e10])
      expect(() => subscribeNats({ nc, cluster: CLUSTER, recheckMs, streams: [SHARED] })).toThrow(/^recheckMs: /);
    for (const replayTimeoutMs of [0, -5, 3e9])
      expect(() => subscribeNats({ nc, cluster: CLUSTER, replayTimeoutMs, streams: [SHARED] })).toThrow(
        /^replayTimeoutMs: /,
      );
    for (const retry of [{ initialMs: 0 }, { maxMs: 3e9 }, { initialMs: 500, maxMs: 100 }, { initialMs: 6_000 }])
      expect(() => subscribeNats({ nc, cluster: CLUSTER, retry, streams: [SHARED] })).toThrow(/^retry/);
    // From plain JavaScript, no connection is said so, not found out as a TypeError deep inside.
    const noConnection = { cluster: CLUSTER, streams: [SHARED] } as unknown as Parameters<typeof subscribeNats>[0];
    expect(() => subscribeNats(noConnection)).toThrow(/^nc: give a connection/);
    const noStreams = { nc, cluster: CLUSTER } as Parameters<typeof subscribeNats>[0];
    expect(() => subscribeNats(noStreams)).toThrow(/^streams: give at least one stream/);
    await nc.flush();
    const received = nc.stats().inMsgs;
    publisher.publish(`${PREFIX}.shared`, "{}");
    await publisher.flush();
    // The server routes the message before it answers this ping: had `shared` been subscribed, it would be counted.
    await nc.flush();
    expect(nc.stats().inMsgs).toBe(received);
  },
);

test("subscribeNats: an option that is none, of another type, a fraction of a ms, a stream twice", async () => {
  const nc = await client(server);
  connections.push(nc);
  const bad: [Record<string, unknown>, ErrorConstructor, RegExp][] = [
    [{ replayTimeout: 1_000 }, TypeError, /^replayTimeout: not an option of subscribeNats \(nc, prefix, cluster, .*\)/],
    [{ retry: { max: 300 } }, TypeError, /^retry\.max: not an option of a backoff \(initialMs, maxMs\)/],
    [{ streams: [SHARED, "node/n1", SHARED] }, RangeError, /^streams: "shared" is given twice/],
    [{ replayTimeoutMs: 1_000.5 }, RangeError, /^replayTimeoutMs: 1000\.5 is not a whole number of milliseconds/],
    [
      { recheckMs: 0.5 },
      RangeError,
      /^recheckMs: 0\.5 is not a whole number of milliseconds from 0 to .* \(0 for never\)/,
    ],
    [{ retry: { initialMs: "20" } }, TypeError, /^retry\.initialMs: "20" is not a whole number/],
    [
      { prefix: PREFIX },
      RangeError,
      /^give the sink's subject `prefix` or the `cluster` name it defaults from, not both/,
    ],
    [{ cluster: "" }, RangeError, /^cluster: the cluster's name, not empty/],
    [{ onError: true }, TypeError, /^onError: true is not a function/],
    [{ url: "http://127.0.0.1:9" }, TypeError, /^url: not an option of subscribeNats/],
  ];
  for (const [options, type, message] of bad) {
    const given = { nc, cluster: CLUSTER, streams: [SHARED], ...options } as Parameters<typeof subscribeNats>[0];
    expect(() => subscribeNats(given)).toThrow(type);
    expect(() => subscribeNats(given)).toThrow(message);
  }
});
