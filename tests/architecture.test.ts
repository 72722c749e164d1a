/**
 * The README's Architecture section is the map of the tree: every folder it names exists,
 * every folder exists in it, and the imports keep to the layering it states.
 */
import { expect, test } from "bun:test";
import { readdir } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = join(import.meta.dir, "..");
/** Not part of the source tree: installed packages, local data, git's own. */
const IGNORED = new Set(["node_modules", ".git", "data", ".tmp"]);
/** Recorded payloads are data, named by their parent in the map. */
const DATA_ROOT = "tests/fixtures/";

async function folders(dir = ""): Promise<string[]> {
  const entries = await readdir(join(ROOT, dir), { withFileTypes: true });
  const found: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || IGNORED.has(entry.name)) continue;
    const path = `${dir}${entry.name}/`;
    found.push(path);
    if (path !== DATA_ROOT) found.push(...(await folders(path)));
  }
  return found;
}

async function mappedFolders(): Promise<string[]> {
  const readme = await Bun.file(join(ROOT, "README.md")).text();
  const section = /^## Architecture\n[\s\S]*?```\n([\s\S]*?)```/m.exec(readme);
  if (!section) throw new Error("README.md has no Architecture section with a tree");
  return section[1]!.split("\n").flatMap((line) => /^([\w.-]+(?:\/[\w.-]+)*\/)\s/.exec(line)?.[1] ?? []);
}

test("the README's Architecture tree names every folder of the repository, and only folders that exist", async () => {
  const actual = (await folders()).sort();
  const mapped = (await mappedFolders()).sort();
  expect(mapped).toEqual(actual);
});

/** Which top-level folders each layer may import from (besides itself and packages). */
const ALLOWED: Record<string, string[]> = {
  "protocol/": [],
  "sdk/": ["protocol/"],
  "core/": ["sdk/", "protocol/"],
  "kube/": ["sdk/", "protocol/"],
  "plugins/": ["sdk/", "protocol/", "kube/"],
  "client/": ["protocol/"],
};

/** `plugins/sinks/nats.ts` and `plugins/sinks/nats/*.ts` are one plugin: `plugins/sinks/nats`. */
const pluginOf = (path: string) => path.split("/").slice(0, 3).join("/").replace(/\.ts$/, "");
/** The registry of built-ins is the one file that imports plugins. */
const REGISTRY = "plugins/index.ts";

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(join(ROOT, dir), { recursive: true });
  return entries.filter((name) => name.endsWith(".ts")).map((name) => join(dir, name));
}

test(
  "imports keep to the layers: the core imports neither host nor plugins, " +
    "plugins only the SDK, protocol and Kubernetes client, the client only the protocol",
  async () => {
    const violations: string[] = [];
    for (const [layer, allowed] of Object.entries(ALLOWED)) {
      for (const file of await sourceFiles(layer)) {
        const text = await Bun.file(join(ROOT, file)).text();
        for (const [, specifier] of text.matchAll(/^(?:import|export)[^"]*?from "(\.[^"]+)"/gm)) {
          const target = relative(ROOT, resolve(ROOT, dirname(file), specifier!));
          const top = `${target.split("/")[0]}/`;
          const own = layer === "plugins/" ? file === REGISTRY || pluginOf(target) === pluginOf(file) : top === layer;
          if (!own && !allowed.includes(top)) violations.push(`${file} imports ${target}`);
        }
      }
    }
    expect(violations).toEqual([]);
  },
);
