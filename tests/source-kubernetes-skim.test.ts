/**
 * Skimming `metadata.managedFields` before JSON.parse (plugins/sources/kubernetes/skim.ts)
 * must never change an answer: on every real capture, on every kind the simulator makes,
 * and on generated JSON built to mislead a scanner (the key inside strings, escapes,
 * unicode, any whitespace, nested metadata, odd managedFields values), the fast path
 * gives JSON.parse's object minus exactly those members, hence the same slim copies and
 * digests; and text that JSON.parse refuses stays refused. Fuzzing is seeded: a failure
 * prints its seed and counterexample; rerun with FC_SEED=<seed> to reproduce.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdir } from "node:fs/promises";
import fc from "fast-check";
import { digest, slim } from "../core/slim.ts";
import type { KubeObject } from "../sdk/model.ts";
import { parseSkimmed, skimManagedFields } from "../plugins/sources/kubernetes/skim.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";

const SEED = Number(process.env.FC_SEED ?? 20_261_204);
const REAL = new URL("./fixtures/k8s/real/", import.meta.url);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
const isRecord = (value: unknown): value is Record<string, Json> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** What skimming must give: JSON.parse's value without the managedFields of metadata objects (not inside them). */
function expected(value: Json): Json {
  if (Array.isArray(value)) return value.map(expected);
  if (!isRecord(value)) return value;
  const out: Record<string, Json> = {};
  for (const [key, field] of Object.entries(value)) {
    const kept = key === "metadata" && isRecord(field) ? withoutManagedFields(field) : expected(field);
    Object.defineProperty(out, key, { value: kept, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function withoutManagedFields(metadata: Record<string, Json>): Json {
  const out: Record<string, Json> = {};
  for (const [key, field] of Object.entries(metadata))
    if (key !== "managedFields")
      Object.defineProperty(out, key, { value: field, enumerable: true, writable: true, configurable: true });
  return out;
}

/**
 * Fast path and plain JSON.parse agree: the same error, or the same slim copies and digests and the expected value;
 * not `exact` where a key is spelled with escapes (kept: the scan compares bytes), so only the rest must match.
 */
function agree(text: string, kind = "Pod", exact = true): void {
  let plain: Json;
  try {
    plain = JSON.parse(text);
  } catch (err) {
    expect(() => parseSkimmed(text)).toThrow((err as Error).message);
    return;
  }
  const skimmed = parseSkimmed(text) as Json;
  expect(exact ? skimmed : expected(skimmed)).toEqual(expected(plain));
  for (const [object, original] of objectsOf(skimmed, plain)) {
    const fast = slim(kind, object as KubeObject);
    expect(fast).toEqual(slim(kind, original as KubeObject));
    expect(digest(fast)).toBe(digest(slim(kind, original as KubeObject)));
  }
}

/** The objects a source would slim: the text itself, a watch event's object, a list's items. */
function objectsOf(skimmed: Json, plain: Json): [Json, Json][] {
  if (!isRecord(skimmed) || !isRecord(plain)) return [[skimmed, plain]];
  const items = plain.items;
  if (Array.isArray(skimmed.items) && Array.isArray(items)) return skimmed.items.map((item, i) => [item, items[i]!]);
  if (isRecord(skimmed.object) && isRecord(plain.object) && typeof plain.type === "string")
    return [[skimmed.object, plain.object]];
  return [[skimmed, plain]];
}

/** The same value with other whitespace: pretty-printed, tabs, CRLF. */
function respaced(text: string): string[] {
  const value = JSON.parse(text);
  return [JSON.stringify(value, null, 2), JSON.stringify(value, null, "\t").replaceAll("\n", "\r\n"), ` ${text}\n`];
}

describe("real captures", async () => {
  const files: { name: string; text: string }[] = [];
  for (const dir of await readdir(REAL, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    for (const file of await readdir(new URL(`${dir.name}/`, REAL))) {
      if (!/\.(json|ndjson)$/.test(file)) continue;
      files.push({ name: `${dir.name}/${file}`, text: await Bun.file(new URL(`${dir.name}/${file}`, REAL)).text() });
    }
  }

  test("every capture is found", () => {
    expect(files.length).toBeGreaterThanOrEqual(19);
  });

  test("pods, lists and single objects: as JSON.parse, in any whitespace", () => {
    for (const { name, text } of files.filter((f) => f.name.endsWith(".json"))) {
      const kind = /\.v1\.([A-Za-z]+?)(List)?\./.exec(name)?.[1] ?? "Pod";
      for (const variant of [text, ...respaced(text)]) agree(variant, kind);
    }
  });

  test("watch streams, line by line", () => {
    for (const { name, text } of files.filter((f) => f.name.endsWith(".ndjson"))) {
      const kind = name.includes("foobars") ? "FooBar" : "Pod";
      for (const line of text.split("\n").filter((l) => l.trim() !== "")) agree(line, kind);
    }
  });

  test("a real pod loses its managedFields bytes and nothing else", () => {
    const pods = files.find((f) => f.name === "kind-v1.36.2/core.v1.PodList.json")!.text;
    const skimmed = skimManagedFields(pods);
    expect(skimmed.length / pods.length).toBeLessThan(0.7);
    expect(skimmed).not.toContain('"managedFields"');
    expect(JSON.parse(skimmed)).toEqual(expected(JSON.parse(pods)));
  });
});

describe("simulator objects of every kind", () => {
  let server: TestApiServer;
  beforeAll(async () => {
    server = await startTestApiServer();
    populate(server, { nodes: 50, podsPerNode: 30, namespaces: 4 });
  });
  afterAll(() => server.stop());

  test("watch lines and LIST pages give what JSON.parse gives", () => {
    const kinds = ["Node", "Namespace", "Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"];
    kinds.push("Service", "EndpointSlice", "CronJob", "Job");
    let objects = 0;
    for (const kind of kinds) {
      const items = server.list(kind);
      expect(items.length).toBeGreaterThan(0);
      for (const item of items) agree(JSON.stringify({ type: "MODIFIED", object: item }), kind);
      const list = { kind: `${kind}List`, apiVersion: "v1", metadata: { resourceVersion: "7" }, items };
      agree(JSON.stringify(list), kind);
      objects += items.length;
    }
    expect(objects).toBeGreaterThan(1500);
  });
});

/** A JSON value whose objects keep their member order and may repeat a key, written with chosen whitespace. */
type Doc = { t: "raw"; json: string } | { t: "arr"; items: Doc[] } | { t: "obj"; members: [string, Doc][] };

const TRAPS = [
  '"managedFields"',
  '\\"managedFields\\":[',
  '{"metadata":{"managedFields":[]}}',
  ',"managedFields":null}',
  "metadata",
  "managedFields",
  "\\",
  '"',
  "\\u0022",
  "é🚀\u2028\u0000",
  "}]",
];
const text = fc.oneof(fc.constantFrom(...TRAPS), fc.string({ unit: "binary", maxLength: 12 }));
const space = fc.constantFrom("", "", " ", "\n", "\t", "\r\n", "  \n\t");
const str = fc.tuple(text, fc.boolean()).map(([value, escapeAll]) => (escapeAll ? unicodeEscaped(value) : value));
const key = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("metadata", "managedFields", "spec", "name", "labels", "f:metadata") },
  { weight: 1, arbitrary: text.filter((k) => k !== "__proto__") },
);

/** Every character as \uXXXX, so the key or value must be recognized in its decoded form (it is not: only kept). */
function unicodeEscaped(value: string): string {
  return [...value].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join("");
}

const docs = fc.letrec<{ doc: Doc; metadata: Doc }>((tie) => ({
  doc: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.oneof(
      str.map((s): Doc => ({ t: "raw", json: s.includes("\\u") ? `"${s}"` : JSON.stringify(s) })),
      fc.constantFrom("null", "true", "false", "0", "-1.5e3", "12").map((json): Doc => ({ t: "raw", json })),
    ),
    fc.array(tie("doc"), { maxLength: 4 }).map((items): Doc => ({ t: "arr", items })),
    fc
      .array(fc.tuple(fc.oneof(key, fc.constant("metadata")), fc.oneof(tie("doc"), tie("metadata"))), { maxLength: 4 })
      .map((members): Doc => ({ t: "obj", members })),
  ),
  // A metadata object with managedFields first, in the middle, last, twice or not at all.
  metadata: fc
    .tuple(
      fc.array(fc.tuple(key, tie("doc")), { maxLength: 4 }),
      fc.array(
        fc.oneof(
          tie("doc"),
          fc.constantFrom<Doc>({ t: "arr", items: [] }, { t: "raw", json: "null" }, { t: "obj", members: [] }),
        ),
        { maxLength: 2 },
      ),
      fc.nat(4),
    )
    .map(([members, managed, at]): Doc => {
      const all = [...members];
      for (const value of managed) all.splice(Math.min(at, all.length), 0, ["managedFields", value]);
      return { t: "obj", members: [["metadata", { t: "obj", members: all }]] };
    }),
}));

function write(doc: Doc, spaces: string[], n = { i: 0 }): string {
  const ws = () => spaces[n.i++ % spaces.length] ?? "";
  if (doc.t === "raw") return doc.json;
  if (doc.t === "arr")
    return `[${ws()}${doc.items.map((item) => write(item, spaces, n)).join(`${ws()},${ws()}`)}${ws()}]`;
  const members = doc.members.map(([k, v]) => `${JSON.stringify(k)}${ws()}:${ws()}${write(v, spaces, n)}`);
  return `{${ws()}${members.join(`${ws()},${ws()}`)}${ws()}}`;
}

const documents = fc.tuple(docs.doc, fc.array(space, { minLength: 1, maxLength: 8 })).map(([doc, spaces]) => ({
  json: write(doc, spaces),
}));

describe("generated JSON (fast-check)", () => {
  test("as JSON.parse minus metadata.managedFields, whatever the strings and whitespace", () => {
    console.log(`fast-check seed ${SEED}`);
    let skimmed = 0;
    fc.assert(
      fc.property(documents, ({ json }) => {
        if (skimManagedFields(json) !== json) skimmed++;
        agree(json);
      }),
      { seed: SEED, numRuns: 3000 },
    );
    // The generator reaches the fast path, not only the texts it leaves alone.
    expect(skimmed).toBeGreaterThan(500);
  });

  test("damaged text: refused exactly when JSON.parse refuses it", () => {
    console.log(`fast-check seed ${SEED}`);
    const damage = fc.tuple(fc.nat(), fc.nat(2), fc.constantFrom("", ",", "}", "]", '"', "\\", ":", "1", "\u0001"));
    fc.assert(
      fc.property(documents, damage, ({ json }, [where, how, insert]) => {
        const at = where % (json.length + 1);
        const cut = how === 0 ? 1 : 0;
        agree(`${json.slice(0, at)}${how === 2 ? "" : insert}${json.slice(at + cut)}`);
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });
});

describe("the cases by hand", () => {
  test.each([
    ['{"metadata":{"managedFields":[]}}', '{"metadata":{}}'],
    ['{"metadata":{"a":1,"managedFields":null}}', '{"metadata":{"a":1}}'],
    ['{"metadata":{"managedFields":{},"a":1}}', '{"metadata":{"a":1}}'],
    ['{"metadata":{"a":1,"managedFields":[{"x":"]"}],"b":2}}', '{"metadata":{"a":1,"b":2}}'],
    ['{"metadata" : { "managedFields" : [ ] , "a" : 1 }}', '{"metadata" : {  "a" : 1 }}'],
    ['{"metadata":{"managedFields":1,"managedFields":2}}', '{"metadata":{}}'],
  ])("%s skims to %s", (input, output) => {
    expect(skimManagedFields(input)).toBe(output);
  });

  test.each(['{"metadata":{"managed\\u0046ields":[1]}}', '{"meta\\u0064ata":{"managedFields":[1]}}'])(
    "%s, spelled with escapes, stays as it is",
    (input) => {
      expect(skimManagedFields(input)).toBe(input);
      agree(input, "Pod", false);
    },
  );

  test.each([
    '{"spec":{"managedFields":[1]}}',
    '{"metadata":{"a":"\\"managedFields\\":[1]"}}',
    '{"metadata":{"a":{"managedFields":[1]}}}',
    '["metadata",{"managedFields":[1]}]',
    '{"metadata":{"managedFields":[1,]}}',
    '{"metadata":{"managedFields":[1 2]}}',
    '{"metadata":{"managedFields":"\t"}}',
    '{"metadata":{"managedFields":"\\x"}}',
    '{"metadata":{"managedFields":01}}',
    '{"metadata":{"managedFields":[1],}}',
  ])("%s stays as it is", (input) => {
    expect(skimManagedFields(input)).toBe(input);
    agree(input);
  });
});
