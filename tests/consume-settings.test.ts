/**
 * `consume`'s `batch` and `retry` as a plugin passes them, its own numbers rather than the SDK's schemas' output:
 * refused as the sink is created, not a retry without pause against a receiver that is down.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { consume } from "../sdk/consume.ts";
import { startTestHost, type TestHost } from "../testing/index.ts";
import { contextOn } from "./plugins-fixtures.ts";

let th: TestHost;
beforeAll(async () => {
  th = await startTestHost();
});
afterAll(() => th.destroy());

const deliver = async () => {};

test("a retry or a batch no schema of the SDK gives is thrown at as the sink is created", () => {
  const ctx = contextOn(th, "own-numbers");
  // Was: taken as given; a retry of 0 ms called a failing deliver about 800 times a second.
  for (const retry of [
    { initialMs: 0, maxMs: 0 },
    { initialMs: 500, maxMs: 100 },
    { initialMs: Number.NaN, maxMs: 1 },
  ])
    expect(() => consume(ctx, { retry, deliver })).toThrow(/^consume: retry \{ initialMs: .*: initialMs is at least/);
  for (const batch of [
    { size: 0, lingerMs: 0 },
    { size: 1.5, lingerMs: 0 },
    { size: 10, lingerMs: -5 },
  ])
    expect(() => consume(ctx, { batch, deliver })).toThrow(/^consume: batch \{ size: .*: size is a whole number/);
  expect(() =>
    consume(ctx, { retry: { initialMs: 1, maxMs: 1 }, batch: { size: 1, lingerMs: 0 }, deliver }),
  ).not.toThrow();
});
