/**
 * What the store reads back carries each object's stored JSON text, which envelopes embed as it is
 * (sdk/model.ts envelopeJson): the envelopes must be byte for byte those of the parsed update, for
 * objects that test JSON's corners, on a file and through a libSQL server.
 */
import { describe, expect, test } from "bun:test";
import { ALL } from "../protocol/streams.ts";
import {
  envelopeJson,
  snapshotEnvelope,
  snapshotEnvelopeJson,
  toEnvelope,
  type CurrentObject,
  type Update,
} from "../sdk/model.ts";
import { BACKENDS, batch, storeSandbox, update } from "./store-libsql-setup.ts";

/** Objects whose JSON a careless rewrite would change. */
const CORNERS: Record<string, unknown>[] = [
  { metadata: { name: "plain" } },
  { metadata: { labels: { "10": "a", "2": "b", z: "c", "4294967295": "d", a: "e" } } },
  { text: 'quote " backslash \\ slash / newline \n tab \t nul \u0000 bell \u0007 del \u007f' },
  { unicode: "é 漢 😀 \u2028 \u2029 \ufeff", lone: "\ud800" },
  { numbers: [0, -0, 1e21, 1e-7, 0.1, -1.5, 2 ** 53, 123456789012], flags: [true, false, null] },
  { empty: {}, none: [], nested: [[[{ deep: [1] }]]] },
  JSON.parse('{"__proto__":{"own":true},"constructor":"c","toString":"t"}'),
];

describe.each(BACKENDS)("envelopes of what the store reads back (%s)", (backend) => {
  const { newDir, makeStore } = storeSandbox(backend);

  async function stored(): Promise<{ written: Update[]; read: Update[]; objects: CurrentObject[] }> {
    const store = makeStore(newDir());
    await store.start();
    const written = CORNERS.map((object, i) => ({
      ...update(i + 1, { stream: i % 2 ? "node/a" : null, namespace: i % 3 ? "n\u00e9" : null }),
      object,
    }));
    await store.commit(batch(written));
    const read = await store.readUpdates({ stream: ALL, after: 0, limit: 100 });
    const { objects } = await store.snapshot({});
    return { written, read, objects };
  }

  test("an update's envelope is JSON.stringify of the parsed envelope, on every stream", async () => {
    const { written, read } = await stored();
    // What JSON keeps of them (-0 is 0): the store has only ever returned that.
    expect(read).toEqual(written.map((u) => ({ ...u, object: JSON.parse(JSON.stringify(u.object)) })));
    for (const [i, update] of read.entries()) {
      for (const stream of [ALL, update.stream ?? ALL]) {
        const expected = JSON.stringify(toEnvelope("ep0", written[i]!, stream));
        expect(envelopeJson("ep0", update, stream)).toBe(expected);
        expect(JSON.stringify(toEnvelope("ep0", update, stream))).toBe(expected);
      }
    }
  });

  test("a snapshot object's envelope is JSON.stringify of the parsed one", async () => {
    const { objects } = await stored();
    expect(objects).toHaveLength(CORNERS.length);
    for (const current of objects) {
      const plain = { ...current, object: JSON.parse(JSON.stringify(current.object)) };
      const time = "2026-11-28T04:05:06.789Z";
      expect(snapshotEnvelopeJson("ep0", "all", current, time)).toBe(
        JSON.stringify(snapshotEnvelope("ep0", "all", plain, time)),
      );
    }
  });

  test("the object reads as a plain object, and replacing it replaces the envelope's", async () => {
    const { read } = await stored();
    const first = read[0]!;
    expect(first.object).toBe(first.object);
    expect({ ...first }).toEqual(first);
    first.object = { metadata: { name: "replaced" } };
    expect(JSON.parse(envelopeJson("ep0", first, ALL)).object).toEqual({ metadata: { name: "replaced" } });
  });
});
