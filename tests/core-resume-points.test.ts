/**
 * What the core stores as a resource's resume point: only a resourceVersion a source can resume from
 * (sdk/resource-version.ts), read back after a restart from the real store.
 */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { rawPod, startTestHost, tempDir, type TestHost } from "../testing/index.ts";

const dirs: string[] = [];
const hosts: TestHost[] = [];
afterEach(async () => {
  for (const th of hosts.splice(0)) await th.destroy();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A host on a store of its own, and a second start of the same store once the first has stopped. */
async function restartable() {
  const dir = await tempDir();
  dirs.push(dir);
  const first = await startTestHost({ dir });
  return {
    first,
    async restart() {
      await first.stop();
      const second = await startTestHost({ dir });
      hosts.push(second);
      return second;
    },
  };
}

/** Well-formed Unicode all the same: a lone surrogate the core refuses sooner (tests/bad-input-unicode.test.ts). */
const NO_SERVER_WRITES = [
  ["a control character", "7\u0001"],
  ["2,000 digits", "8".repeat(2000)],
];

test.each(NO_SERVER_WRITES)(
  "a change's or bookmark's resourceVersion with %s is committed as no resume point: the last good one stays",
  async (_, odd) => {
    const { first, restart } = await restartable();
    await first.changes.apply("pods", "ADDED", rawPod("a", { rv: "3" }));
    await first.changes.apply("pods", "MODIFIED", rawPod("a", { rv: odd, phase: "Failed" }));
    await first.changes.bookmark("pods", odd);
    await first.changes.flush();
    expect(first.changes.resumePoint("pods", "Pod")).toBe("3");
    const second = await restart();
    expect(second.host.log.head()).toBe(2);
    expect(second.changes.resumePoint("pods", "Pod")).toBe("3");
  },
);

test.each(NO_SERVER_WRITES)(
  "a relist that ends at a resourceVersion with %s stores none: the next start lists",
  async (_, odd) => {
    const { first, restart } = await restartable();
    await first.changes.apply("pods", "ADDED", rawPod("a", { rv: "3" }));
    const relist = first.changes.relist("pods", "Pod");
    await first.changes.apply("pods", "ADDED", rawPod("a", { rv: "3" }));
    await relist.end(odd);
    const second = await restart();
    expect(second.changes.resumePoint("pods", "Pod")).toBeUndefined();
  },
);
