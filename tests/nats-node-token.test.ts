import { describe, expect, test } from "bun:test";
import { decodeNodeToken, encodeNodeToken, isNodeName } from "../protocol/node-token.ts";
import { seededRandom } from "../simulator/population.ts";

/** What a NATS server accepts as one subject token (no separator, wildcard or whitespace). */
const ONE_NATS_TOKEN = /^[^.*>\s]+$/;

const ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789";
const INNER = `${ALNUM}-`;

function legalName(random: () => number): string {
  const pick = (chars: string) => chars[Math.floor(random() * chars.length)]!;
  const labels: string[] = [];
  const budget = 1 + Math.floor(random() * 253);
  let length = -1;
  while (length + 2 <= budget) {
    const room = budget - length - 1;
    const size = 1 + Math.floor(random() * Math.min(room, random() < 0.2 ? 80 : 20));
    let label = pick(ALNUM);
    for (let i = 1; i < size - 1; i++) label += pick(INNER);
    if (size > 1) label += pick(ALNUM);
    labels.push(label);
    length += label.length + 1;
  }
  return labels.join(".");
}

describe("node token", () => {
  test("encodes a cloud node name into one readable token and back", () => {
    const name = "ip-10-0-1-23.eu-west-1.compute.internal";
    expect(encodeNodeToken(name)).toBe("ip-10-0-1-23_eu-west-1_compute_internal");
    expect(decodeNodeToken("ip-10-0-1-23_eu-west-1_compute_internal")).toBe(name);
  });

  test(
    "round-trips 20,000 generated legal names (dots, dashes, digits, up to 253 chars) " + "into single NATS tokens",
    () => {
      const random = seededRandom(20261128);
      const tokens = new Set<string>();
      const names = new Set<string>();
      const edge = [
        "a",
        "0",
        "a-b",
        "1.2.3.4",
        "x".repeat(253),
        `${"a".repeat(63)}.${"b".repeat(63)}`,
        "a0.0b",
        "a--b.c---d",
      ];
      for (let i = 0; i < 20_000; i++) names.add(legalName(random));
      for (const name of edge) names.add(name);
      for (const name of names) {
        expect(isNodeName(name)).toBe(true);
        const token = encodeNodeToken(name);
        expect(token).toMatch(ONE_NATS_TOKEN);
        expect(decodeNodeToken(token)).toBe(name);
        tokens.add(token);
      }
      expect(tokens.size).toBe(names.size);
    },
  );

  test("refuses what Kubernetes would refuse as a node name, and tokens no legal name produces", () => {
    for (const illegal of [
      "",
      "A",
      "Node-1",
      "a_b",
      "-a",
      "a-",
      "a..b",
      ".a",
      "a.",
      "a*b",
      "a>b",
      "a b",
      "a/b",
      "x".repeat(254),
      "é",
    ]) {
      expect(isNodeName(illegal)).toBe(false);
      expect(() => encodeNodeToken(illegal)).toThrow(RangeError);
    }
    for (const token of ["", "a.b", "a__b", "_a", "a_", "A", "a*", "x".repeat(254)]) {
      expect(() => decodeNodeToken(token)).toThrow(RangeError);
    }
  });
});
