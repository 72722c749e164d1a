/**
 * Bad input, never a crash or a hang: `<prefix>.replay` requests that are malformed, huge
 * (1 MiB payloads), from the future (a version ahead of the head, another epoch), or whose
 * reply subject is one kubemeta must not publish to, sent all at once to a real nats-server.
 * Each gets the documented answer (one error chunk, a reset with the current state, or
 * nothing) and the responder keeps serving.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createLogger } from "../host/logger.ts";
import { ALL, SHARED } from "../protocol/streams.ts";
import { MAX_REQUEST_BYTES, type ReplayChunk, type ResetReason } from "../protocol/replay.ts";
import { waitFor } from "../testing/index.ts";
import { replay } from "./nats-consumer.ts";
import { churn, natsSuite, nodeNames, PREFIX, rawNode, SLOW_MS, truth } from "./nats-fixtures.ts";

const REPLAY = `${PREFIX}.replay`;
const NODES = nodeNames(3);
const MiB = 1024 * 1024;

const logged: Record<string, unknown>[] = [];
const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
// Requests of 1 MiB need a server that takes them (its default max_payload is 1 MiB, headers included).
const suite = natsSuite({ maxPayload: 4 * MiB }, { logger });

beforeAll(async () => {
  const { th } = suite;
  for (const node of NODES) await th.changes.apply("nodes", "ADDED", rawNode(node));
  for (let round = 0; round < 2; round++) await churn(th.changes, NODES, round);
  await th.changes.flush();
}, SLOW_MS);

/** Requests that must get exactly one chunk `{error, last: true}`. */
const MALFORMED: Array<[string, string]> = [
  ["an empty payload", ""],
  ["binary garbage", "\u0000\u0001\uffff\ud800 not json"],
  ["JSON null", "null"],
  ["an empty object", "{}"],
  ["a JSON array", "[]"],
  ["a JSON number", "42"],
  ["a JSON string", '"all"'],
  ["a stream that is a number", '{"stream":5}'],
  ["an empty node name", '{"stream":"node/"}'],
  ["a stream that is no stream", '{"stream":"everything"}'],
  ["a unicode node name", '{"stream":"node/nœud-🚀"}'],
  ["from a number", '{"stream":"all","from":5}'],
  ["from without a version", '{"stream":"all","from":"abc:"}'],
  ["from with a version of 16 digits", `{"stream":"all","from":"abc:${Number.MAX_SAFE_INTEGER}"}`],
  ["from with a negative version", '{"stream":"all","from":"abc:-1"}'],
  ["from with an epoch not in visible ASCII", '{"stream":"all","from":"🚀:1"}'],
  ["to negative", '{"stream":"all","to":-1}'],
  ["to a fraction", '{"stream":"all","to":1.5}'],
  ["to a string", '{"stream":"all","to":"3"}'],
  ["to huge", '{"stream":"all","to":1e300}'],
  ["to of 16 digits (a version has at most 15, as in from)", '{"stream":"all","to":1000000000000000}'],
  ["1 MiB that is not JSON", "x".repeat(MiB)],
  ["1 MiB of nested arrays", `${"[".repeat(MiB / 2)}${"]".repeat(MiB / 2)}`],
  ["a 1 MiB stream name", JSON.stringify({ stream: `node/${"a".repeat(MiB)}` })],
];

const resultCount = (metrics: string, result: string) =>
  Number(
    new RegExp(`kubemeta_nats_replay_requests_total\\{result="${result}",sink="nats"\\} (\\d+)`).exec(metrics)?.[1] ??
      0,
  );
const malformedCount = (metrics: string) => resultCount(metrics, "malformed");

function expectWholeReply(chunks: ReplayChunk[]) {
  expect(chunks.map((chunk) => chunk.seq)).toEqual(chunks.map((_, i) => i));
  expect(chunks.at(-1)!.last).toBe(true);
}

describe("bad replay requests", () => {
  test(
    "malformed and 1 MiB requests, all at once: one error chunk each, counted, and the responder goes on",
    async () => {
      const { th, nc } = suite;
      const before = malformedCount(th.host.metrics.render());
      const replies = await Promise.all(MALFORMED.map(([, payload]) => replay(nc, REPLAY, payload)));
      replies.forEach((chunks, i) => {
        const what = MALFORMED[i]![0];
        expect({ what, chunks: chunks.length }).toEqual({ what, chunks: 1 });
        expect(chunks[0]).toMatchObject({ epoch: th.host.epoch, seq: 0, last: true, updates: [] });
        expect({ what, error: typeof chunks[0]!.error }).toEqual({ what, error: "string" });
        // The error says what is wrong without echoing a huge request back.
        expect(chunks[0]!.error!.length).toBeLessThan(1_000);
        // In the protocol's words, not the validator's (`Invalid key: Expected "stream" but received undefined`).
        expect({ what, error: chunks[0]!.error }).not.toEqual({
          what,
          error: expect.stringMatching(/Invalid|Expected/),
        });
        if (MALFORMED[i]![1].length > MAX_REQUEST_BYTES)
          expect(chunks[0]!.error).toBe(`a replay request is at most ${MAX_REQUEST_BYTES} bytes`);
      });
      // The README quotes such a chunk whole: its fields, in the order they come.
      const readme = await Bun.file(join(import.meta.dir, "..", "README.md")).text();
      const quoted = /A malformed request, or one over 16 KiB [^`]*`(\{[^`]*\})`/.exec(readme)?.[1];
      expect(quoted).toBeDefined();
      const documented = JSON.parse(quoted!) as ReplayChunk;
      expect(Object.keys(documented)).toEqual(Object.keys(replies[0]![0]!));
      const sent = replies[0]![0]!;
      const quotedAsSent: ReplayChunk = { ...documented, epoch: sent.epoch, error: sent.error };
      expect(quotedAsSent).toEqual(sent);
      await waitFor(
        () => malformedCount(th.host.metrics.render()) === before + MALFORMED.length,
        2_000,
        "every malformed request counted",
      );
      const chunks = await replay(nc, REPLAY, { stream: SHARED, from: `${th.host.epoch}:0` });
      expect(chunks[0]!.reset).toBeUndefined();
      expectWholeReply(chunks);
    },
    SLOW_MS,
  );

  test(
    "a valid request padded to near the 16 KiB a request may weigh with unknown fields is answered as usual",
    async () => {
      const { th, nc } = suite;
      const stream = `node/${NODES[1]}`;
      const junk = "j".repeat(MAX_REQUEST_BYTES - 200);
      const chunks = await replay(nc, REPLAY, { stream, junk, nested: { a: [1, { b: "ü🚀" }] } });
      expect(chunks[0]!.reset).toBe("no-resume-point");
      expectWholeReply(chunks);
      expect(new Map(chunks.flatMap((c) => c.updates).map((e) => [e.uid, e.version]))).toEqual(await truth(th, stream));
    },
    SLOW_MS,
  );

  test(
    "requests from the future (ahead of the head, another epoch) get a reset with the current state",
    async () => {
      const { th, nc } = suite;
      const head = th.host.log.head();
      const stream = `node/${NODES[0]}`;
      const expected = await truth(th, stream);
      const future: Array<[string, ResetReason, number?]> = [
        [`${th.host.epoch}:${head + 1}`, "ahead-of-log"],
        [`${th.host.epoch}:999999999999999`, "ahead-of-log"],
        [`ffffffffffffffff:${head + 5}`, "other-epoch"],
        [`${th.host.epoch}x:${head}`, "other-epoch"],
        // Any visible ASCII text without a colon is an epoch: a long one is another epoch, not an error.
        [`${"e".repeat(8 * 1024)}:1`, "other-epoch"],
        // A `to` below such a `from` (after a new epoch, the prev that showed the gap) is no error: a reset.
        [`ffffffffffffffff:${head + 5}`, "other-epoch", 3],
        [`${th.host.epoch}:${head + 7}`, "ahead-of-log", head],
      ];
      // Ahead of the head is waited for 2 s first (sdk/resume.ts): a reply comes after that.
      const replies = await Promise.all(future.map(([from, , to]) => replay(nc, REPLAY, { stream, from, to }, 3_000)));
      replies.forEach((chunks, i) => {
        const from = future[i]![0].slice(0, 40);
        expect({ from, reset: chunks[0]!.reset }).toEqual({ from, reset: future[i]![1] });
        expectWholeReply(chunks);
        expect(chunks.at(-1)!.through).toBe(head);
        expect(new Map(chunks.flatMap((c) => c.updates).map((e) => [e.uid, e.version]))).toEqual(expected);
      });
    },
    SLOW_MS,
  );

  test(
    "`to` before a `from` of this log is an error chunk, counted as malformed",
    async () => {
      const { th, nc } = suite;
      const before = malformedCount(th.host.metrics.render());
      const chunks = await replay(nc, REPLAY, { stream: ALL, from: `${th.host.epoch}:9`, to: 3 });
      expect(chunks).toEqual([
        expect.objectContaining({ seq: 0, last: true, updates: [], error: "to is before from" }),
      ]);
      await waitFor(() => malformedCount(th.host.metrics.render()) === before + 1, 2_000, "the request counted");
    },
    SLOW_MS,
  );

  test(
    "`to` beyond the head replays up to the head",
    async () => {
      const { th, nc } = suite;
      const head = th.host.log.head();
      const chunks = await replay(nc, REPLAY, { stream: ALL, from: `${th.host.epoch}:${head - 3}`, to: head + 1_000 });
      expect(chunks[0]!.reset).toBeUndefined();
      expectWholeReply(chunks);
      expect(chunks.flatMap((c) => c.updates).map((e) => e.version)).toEqual([head - 2, head - 1, head]);
      expect(chunks.at(-1)!.through).toBe(head);
    },
    SLOW_MS,
  );

  test(
    "a reply subject under kubemeta's prefix, a `$` API subject, a wildcard, an empty token, or none: nothing is " +
      "published, each is counted",
    async () => {
      const { th, nc } = suite;
      // Replay chunks (they have a `seq`), wherever they went but to the inbox of the last request below; the sink
      // may still be publishing updates on the data subjects.
      const published: string[] = [];
      const isChunk = (data: string) => data.includes('"seq":') && "seq" in JSON.parse(data);
      const watch = (subject: string) =>
        nc.subscribe(subject, {
          callback: (_, msg) =>
            void (!msg.subject.startsWith("_INBOX.") || /[*>]/.test(msg.subject)
              ? isChunk(msg.string()) && published.push(msg.subject)
              : undefined),
        });
      // A reply to a wildcard goes, as it is, to every subscriber whose subscription matches it.
      const watching = [watch(`${PREFIX}.>`), watch("$JS.API.>"), watch("$SYS.>"), watch(">")];
      await nc.flush();
      const before = resultCount(th.host.metrics.render(), "refused");
      const logLines = () => logged.filter((line) => line.msg === "replay request refused, not answered").length;
      const logsBefore = logLines();
      const replies = [
        `${PREFIX}.all`,
        `${PREFIX}.shared`,
        `${PREFIX}.node.${NODES[0]!.replaceAll(".", "_")}`,
        `${PREFIX}.replay`,
        "$JS.API.STREAM.DELETE.KUBEMETA",
        "$SYS.REQ.SERVER.PING",
        `${PREFIX.split(".")[0]}.*.all`,
        `${PREFIX.split(".")[0]}.>`,
        ">",
        "_INBOX.>",
        "_INBOX.*",
        // The server takes them and delivers the reply nowhere: no subscription can have an empty token.
        "_INBOX..x",
        "_INBOX.x.",
        ".a",
        "a.",
        undefined,
      ];
      const requests = [{ stream: ALL }, { stream: SHARED, from: `${th.host.epoch}:1` }, "not json"];
      for (let i = 0; i < 20; i++)
        for (const reply of replies)
          for (const request of requests) nc.publish(REPLAY, JSON.stringify(request), reply ? { reply } : {});
      // Taken after them on the same connection: had any of them been answered, it would have been by then.
      const chunks = await replay(nc, REPLAY, { stream: SHARED, from: `${th.host.epoch}:${th.host.log.head()}` });
      expectWholeReply(chunks);
      await nc.flush();
      for (const sub of watching) sub.unsubscribe();
      expect(published).toEqual([]);
      const refused = 20 * replies.length * requests.length;
      await waitFor(
        () => resultCount(th.host.metrics.render(), "refused") === before + refused,
        5_000,
        "every request refused",
      );
      // One line says it, not one per request.
      expect(logLines() - logsBefore).toBe(1);
    },
    SLOW_MS,
  );
});
