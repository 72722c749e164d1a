/**
 * A flood of replay requests whose `from` is ahead of the log (agents holding versions a replica has yet to read):
 * README's Replay says such a `from` is waited for first, up to 2 s, since another replica further on may have given
 * it, and that 10,000 waiting requests are told `busy; ask again later`. Past the 1,000 that wait at once, a request is
 * told busy too, never answered at once with a reset (the whole stream's state, where a replay would do once the log
 * gets there). A real nats-server and a test host's NATS sink.
 */
import { expect, test } from "bun:test";
import type { ReplayChunk } from "../protocol/replay.ts";
import { waitFor } from "../testing/index.ts";
import { natsSuite, PREFIX, rawNamespace, SLOW_MS } from "./nats-fixtures.ts";

const suite = natsSuite();
/** What the sink holds waiting for the log at once (plugins/sinks/nats/replay.ts), and a few more. */
const WAITING = 1_000;
const MORE = 5;

test(
  "requests ahead of the log past the 1,000 that wait are told busy, not reset; those that wait get a replay",
  async () => {
    const { th, nc } = suite;
    await th.changes.apply("namespaces", "ADDED", rawNamespace("before"));
    await th.changes.flush();
    const head = th.host.log.head();
    const from = `${th.host.epoch}:${head + 1}`;
    const last = new Map<string, ReplayChunk>();
    const inbox = `_INBOX.ahead-${process.pid}`;
    const sub = nc.subscribe(`${inbox}.>`, {
      callback: (_, msg) => {
        const chunk = msg.json<ReplayChunk>();
        if (chunk.reset !== undefined || chunk.last) last.set(msg.subject, { ...last.get(msg.subject), ...chunk });
      },
    });
    await nc.flush();
    for (let i = 0; i < WAITING + MORE; i++)
      nc.publish(`${PREFIX}.replay`, JSON.stringify({ stream: "shared", from }), { reply: `${inbox}.${i}` });
    await nc.flush();
    // Those past the waiting ones are answered at once; the others wait for the log to reach their `from`.
    await waitFor(() => last.size >= MORE, 1_500, `${MORE} answers at once`);
    await th.changes.apply("namespaces", "ADDED", rawNamespace("after"));
    await th.changes.flush();
    await waitFor(() => last.size === WAITING + MORE, 10_000, "every request answered");
    sub.unsubscribe();
    const answers = [...last.values()];
    expect(answers.filter((chunk) => chunk.reset !== undefined).map((chunk) => chunk.reset)).toEqual([]);
    expect(answers.filter((chunk) => chunk.error === "busy; ask again later").length).toBe(MORE);
    const replays = answers.filter((chunk) => chunk.error === undefined);
    expect(replays.length).toBe(WAITING);
    for (const chunk of replays) expect(chunk.through).toBe(head + 1);
  },
  SLOW_MS,
);
