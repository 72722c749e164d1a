import { describe, expect, test } from "bun:test";
import { CHUNK_BYTES, ChunkWriter } from "../plugins/sinks/nats/chunks.ts";
import { MalformedRequestError, parseReplayRequest, type ReplayChunk } from "../protocol/replay.ts";

describe("replay request", () => {
  test("reads stream, from and to as the README documents them", () => {
    expect(
      parseReplayRequest(
        '{"stream":"node/ip-10-0-1-23.eu-west-1.compute.internal","from":"c0a8f3e1:48190","to":48213}',
      ),
    ).toEqual({
      stream: "node/ip-10-0-1-23.eu-west-1.compute.internal",
      from: { epoch: "c0a8f3e1", version: 48190 },
      to: 48213,
    });
    expect(parseReplayRequest('{"stream":"shared"}')).toEqual({ stream: "shared", to: undefined });
    expect(parseReplayRequest('{"stream":"all","from":null,"future":"ignored"}')).toEqual({
      stream: "all",
      to: undefined,
    });
    expect(parseReplayRequest('{"stream":"all","from":"e:0"}').from).toEqual({ epoch: "e", version: 0 });
    // The largest `to` is the largest version `from` may name.
    expect(parseReplayRequest('{"stream":"all","from":"e:999999999999999","to":999999999999999}')).toEqual({
      stream: "all",
      from: { epoch: "e", version: 999_999_999_999_999 },
      to: 999_999_999_999_999,
    });
    // Encoders that write every optional field (Go without omitempty) send null for one not set.
    expect(parseReplayRequest('{"stream":"all","from":"e:7","to":null}')).toEqual({
      stream: "all",
      from: { epoch: "e", version: 7 },
      to: undefined,
    });
  });

  test("says what is wrong with a malformed request", () => {
    const cases: [string, RegExp][] = [
      ["not json", /not JSON/],
      // In the protocol's words, naming the field and what it must be (valibot's: `Invalid key: Expected "stream"`).
      ["[]", /^request must be a JSON object: \{"stream": …, "from"\?: …, "to"\?: …\}$/],
      ["null", /^request must be a JSON object/],
      ['"all"', /^request must be a JSON object/],
      ["{}", /^stream is missing: it must be "all", "shared" or "node\/<node name>"/],
      ['{"from":"e:1"}', /^stream is missing: it must be "all"/],
      ['{"stream":"node/"}', /stream must be/],
      ['{"stream":"node/Bad_Name"}', /stream must be/],
      ['{"stream":"pods"}', /stream must be/],
      ['{"stream":"all","from":42}', /from must be a string/],
      ['{"stream":"all","from":"42"}', /from must be "<epoch>:<version>"/],
      ['{"stream":"all","from":"e:-1"}', /from must be/],
      ['{"stream":"all","from":"e:1","to":1.5}', /^to must be an integer$/],
      ['{"stream":"all","to":-1}', /^to must be >= 0$/],
      // Whole numbers all, so "an integer" would be wrong: a version has at most 15 digits, as in `from`.
      ['{"stream":"all","to":1000000000000000}', /^to must be at most 999999999999999 \(15 digits, as a version\)$/],
      [`{"stream":"all","to":${2 ** 53}}`, /^to must be at most 999999999999999 /],
      ['{"stream":"all","to":1e300}', /^to must be at most 999999999999999 /],
    ];
    for (const [payload, message] of cases) {
      let error: unknown;
      try {
        parseReplayRequest(payload);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(MalformedRequestError);
      expect((error as Error).message).toMatch(message);
    }
  });
});

async function writeAll(
  maxBytes: number,
  envelopes: { version: number; json: string }[],
  reset = false,
): Promise<string[]> {
  const sent: string[] = [];
  const writer = new ChunkWriter("ep0", maxBytes, async (chunk) => void sent.push(chunk));
  if (reset) writer.markReset("behind-retention");
  for (const e of envelopes) await writer.add(e.json, e.version);
  await writer.finish(999_999);
  return sent;
}

describe("replay chunks", () => {
  test("every chunk fits max_payload in UTF-8 bytes, in order, numbered, the last one marked", async () => {
    const envelopes = Array.from({ length: 300 }, (_, i) => ({
      version: i + 1,
      json: JSON.stringify({
        version: i + 1,
        object: { note: "é漢😀".repeat(i % 37), pad: "x".repeat((i * 7) % 120) },
      }),
    }));
    const sent = await writeAll(1_000, envelopes, true);
    expect(sent.length).toBeGreaterThan(10);
    const chunks = sent.map((raw) => {
      expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(1_000);
      return JSON.parse(raw) as ReplayChunk & { updates: { version: number }[] };
    });
    expect(chunks.map((c) => c.seq)).toEqual(chunks.map((_, i) => i));
    expect(chunks.map((c) => c.reset)).toEqual(chunks.map((_, i) => (i === 0 ? "behind-retention" : undefined)));
    expect(chunks.map((c) => c.last ?? false)).toEqual(chunks.map((_, i) => i === chunks.length - 1));
    expect(chunks.at(-1)!.through).toBe(999_999);
    expect(chunks.every((c) => c.epoch === "ep0")).toBe(true);
    expect(chunks.flatMap((c) => c.updates.map((u) => u.version))).toEqual(envelopes.map((e) => e.version));
  });

  test("an envelope larger than max_payload alone is listed as oversized, not sent", async () => {
    const envelopes = [
      { version: 1, json: '{"version":1}' },
      { version: 2, json: JSON.stringify({ version: 2, big: "x".repeat(600) }) },
      { version: 3, json: '{"version":3}' },
    ];
    const chunks = (await writeAll(400, envelopes)).map(
      (raw) => JSON.parse(raw) as ReplayChunk & { updates: { version: number }[] },
    );
    expect(chunks.flatMap((c) => c.updates.map((u) => u.version))).toEqual([1, 3]);
    expect(chunks.flatMap((c) => c.oversized ?? [])).toEqual([2]);
  });

  test("under a larger max_payload, chunks of many envelopes stay within CHUNK_BYTES, a larger one alone", async () => {
    const MiB = 1 << 20;
    const envelope = (version: number, padding: number) => ({
      version,
      json: JSON.stringify({ version, pad: "x".repeat(padding) }),
    });
    const large = 1 + Math.floor(CHUNK_BYTES / 1_000);
    const envelopes = Array.from({ length: 3_000 }, (_, i) => envelope(i + 1, i === large ? CHUNK_BYTES * 2 : 1_000));
    const sent = await writeAll(4 * MiB, envelopes);
    const chunks = sent.map((raw) => ({ bytes: Buffer.byteLength(raw), versions: versionsOf(raw) }));
    expect(chunks.flatMap((chunk) => chunk.versions)).toEqual(envelopes.map((e) => e.version));
    expect(chunks.filter((chunk) => chunk.bytes > CHUNK_BYTES).map((chunk) => chunk.versions)).toEqual([[large + 1]]);
    // Filled, not merely bounded: each chunk before the large one and the last takes as much as fits.
    expect(chunks.filter((chunk) => chunk.bytes <= CHUNK_BYTES - 1_100).length).toBeLessThanOrEqual(2);
  });

  test("an empty replay is one final chunk", async () => {
    expect((await writeAll(1_000, [])).map((raw) => JSON.parse(raw))).toEqual([
      { epoch: "ep0", seq: 0, updates: [], last: true, through: 999_999 },
    ]);
  });

  test("a reset that fails before its first chunk is the README's error chunk, without the reset marker", async () => {
    const sent: string[] = [];
    const writer = new ChunkWriter("ep0", 1_000, async (chunk) => void sent.push(chunk));
    writer.markReset("other-epoch");
    await writer.fail("replay failed: gone; ask again");
    expect(sent.map((raw) => JSON.parse(raw))).toEqual([
      { epoch: "ep0", seq: 0, updates: [], error: "replay failed: gone; ask again", last: true },
    ]);
  });

  test("a reset that fails after its first chunk keeps the marker on that chunk and ends with the error", async () => {
    const envelopes = Array.from({ length: 20 }, (_, i) => ({
      version: i + 1,
      json: JSON.stringify({ pad: "x".repeat(100) }),
    }));
    const sent: string[] = [];
    const writer = new ChunkWriter("ep0", 1_000, async (chunk) => void sent.push(chunk));
    writer.markReset("other-epoch");
    for (const e of envelopes) await writer.add(e.json, e.version);
    await writer.fail("replay failed: gone; ask again");
    const chunks = sent.map((raw) => JSON.parse(raw) as ReplayChunk);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks[0]!.reset).toBe("other-epoch");
    expect(chunks.at(-1)).toEqual({
      epoch: "ep0",
      seq: chunks.length - 1,
      updates: [],
      error: "replay failed: gone; ask again",
      last: true,
    });
  });
});

function versionsOf(raw: string): number[] {
  return (JSON.parse(raw) as { updates: { version: number }[] }).updates.map((u) => u.version);
}
