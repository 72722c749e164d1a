/**
 * The README's quick start says which packages npm warns about on the Node.js it names (they ask for a later
 * Node.js, which only Node, not Bun, would care about): every such package of the lockfile, by name, and no other.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");

test("the quick start names each package whose engines refuse the Node.js it says npm runs on", async () => {
  const readme = await Bun.file(join(ROOT, "README.md")).text();
  const quickStart = /\n## Quick start\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? "";
  const node = Number(/with Node\.js (\d+) or later/.exec(quickStart)?.[1]);
  expect(node).toBeGreaterThan(0);
  const lock = (await Bun.file(join(ROOT, "package-lock.json")).json()) as {
    packages: Record<string, { engines?: { node?: string } }>;
  };
  // Every range in the lockfile is a lower bound (">= 22.x", ">=18.0.0"): its major is what it asks for.
  const refusing = Object.entries(lock.packages)
    .filter(([, entry]) => Number(/^>=\s*(\d+)/.exec(entry.engines?.node ?? "")?.[1] ?? 0) > node)
    .map(([path]) => path.replace(/^.*node_modules\//, ""));
  expect(refusing.length).toBeGreaterThan(0);
  const named = [...quickStart.matchAll(/`(@?[\w./-]+)` of the /g)].map((m) => m[1]);
  expect(named.sort()).toEqual(refusing.sort());
});
