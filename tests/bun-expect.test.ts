/**
 * Bun quirk (1.4.4): `toMatchObject` writes each asymmetric matcher of its expected value (`expect.any`,
 * `expect.anything`, `expect.objectContaining`, `expect.stringMatching`…) into the object it checks, in place of the
 * value that matched: in an array's objects too, in a frozen object (which it unfreezes), and in the properties that
 * matched before one that fails. A log line or an answer checked so and read again afterwards (a field compared, the
 * lines serialized to look for a secret, a retry of the same match) reads the matcher: `typeof` "object", `{}` in
 * JSON, and `toEqual` takes any value the matcher would (a wrong number passes). kubemeta's tests use it only on an
 * object nothing reads afterwards; an object read again is matched with `toEqual(expect.objectContaining(…))`, or a
 * `structuredClone` of it is, which leave it as it was.
 */
import { expect, test } from "bun:test";

/** A log line as the tests parse one: a number, a nested error and a string that matchers check. */
const logLine = () => ({
  level: "info",
  downMs: 12,
  error: { code: "ECONNREFUSED", message: "refused" },
  detail: "ECONNREFUSED: 127.0.0.1:1",
});
const MATCHERS = {
  downMs: expect.any(Number),
  error: expect.objectContaining({ code: "ECONNREFUSED" }),
  detail: expect.stringMatching(/^ECONNREFUSED: /),
};

test("Bun quirk: toMatchObject with an asymmetric matcher writes the matcher into the object it checks", () => {
  const line = logLine();
  expect(line).toMatchObject(MATCHERS);
  expect(typeof line.downMs).toBe("object");
  expect(JSON.stringify(line)).toBe('{"level":"info","downMs":{},"error":{},"detail":{}}');
  // Compared again, each matcher stands for any value it takes: a wrong number passes, the same match fails.
  expect(line).toEqual({ ...logLine(), downMs: 99_999, error: { code: "ECONNREFUSED", message: "another" } });
  expect(() => expect(line).toMatchObject({ downMs: expect.any(Number) })).toThrow();

  const lines = [{ msg: "a", at: 1 }];
  expect(lines).toMatchObject([{ at: expect.anything() }]);
  expect(JSON.stringify(lines)).toBe('[{"msg":"a","at":{}}]');

  const frozen = Object.freeze({ at: 1 });
  expect(frozen).toMatchObject({ at: expect.any(Number) });
  expect([Object.isFrozen(frozen), JSON.stringify(frozen)]).toEqual([false, '{"at":{}}']);

  // A match that fails (as in a retry loop) has written into the properties it matched before.
  const partly = { at: 1, level: "warn" };
  expect(() => expect(partly).toMatchObject({ at: expect.any(Number), level: "info" })).toThrow();
  expect(JSON.stringify(partly)).toBe('{"at":{},"level":"warn"}');

  // A shallow copy shares its nested objects, and they are written into.
  const nested = { error: { code: "EPIPE", errno: 32 } };
  expect({ ...nested }).toMatchObject({ error: { errno: expect.any(Number) } });
  expect(typeof nested.error.errno).toBe("object");
});

test("the forms kubemeta's tests use on an object read again leave it as it was", () => {
  const line = logLine();
  expect(line).toEqual(expect.objectContaining(MATCHERS));
  expect(line).toEqual({ ...MATCHERS, level: "info" });
  expect(line).toStrictEqual({ ...MATCHERS, level: "info" });
  expect(line).toMatchObject(expect.objectContaining(MATCHERS));
  expect(structuredClone(line)).toMatchObject(MATCHERS);
  expect(line).toMatchObject({ level: "info", downMs: 12, error: { code: "ECONNREFUSED" } });
  expect(JSON.stringify(line)).toBe(JSON.stringify(logLine()));
});

/**
 * Bun quirk (1.4.4): `expect(fn).toThrow(…)` passes when `fn` throws nothing but returns a rejected Promise (Jest
 * fails it: "Received function did not throw"), so it cannot tell a call that throws from one that rejects, nor a
 * synchronous check from an async one that fails later. kubemeta's tests use `toThrow` on synchronous functions only
 * (every one checked: loadKubeConfig, subscribeSse, subscribeNats, parseTailArgs, the schemas…); a call that may
 * return a Promise is checked by what it returns (tests/store-libsql-ws-client.test.ts).
 */
test("Bun quirk: toThrow passes on a function that returns a rejected Promise without throwing", async () => {
  const rejects = (): Promise<void> => Promise.reject(new Error("boom"));
  let returned: Promise<void> | undefined;
  expect(() => {
    returned = rejects();
    return returned;
  }).toThrow("boom");
  // It threw nothing: what it returned is the rejection, which the matcher took for a throw.
  expect(returned).toBeInstanceOf(Promise);
  expect(
    await returned!.then(
      () => "resolved",
      (error: Error) => error.message,
    ),
  ).toBe("boom");
  // A function that returns a Promise which resolves is no throw.
  expect(() => expect(() => Promise.resolve()).toThrow()).toThrow();
});
