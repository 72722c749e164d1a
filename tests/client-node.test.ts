/**
 * The client ships as TypeScript source, and Node.js imports it as it is: from 22.18 (23.6) Node strips the types
 * itself, but only syntax that erases to JavaScript (no parameter properties, enums or namespaces), and refuses a
 * module with any other at import (ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX). This machine's Node is older, so tsc says it
 * instead: `erasableSyntaxOnly` over the client's import graph, with no Bun types and the web platform's (the
 * client uses fetch and timers alone, in Node and browsers).
 */
import { expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";

const ROOT = join(import.meta.dir, "..");

test("kubemeta/client is TypeScript whose types Node.js strips: erasable syntax, no Bun types", async () => {
  const dir = await tempDir("kubemeta-client-node-");
  try {
    const config = join(dir, "tsconfig.json");
    await Bun.write(
      config,
      JSON.stringify({
        extends: join(ROOT, "tsconfig.json"),
        compilerOptions: { erasableSyntaxOnly: true, types: [], lib: ["ESNext", "DOM"] },
        files: [join(ROOT, "client/index.ts")],
        include: [],
      }),
    );
    const tsc = Bun.spawn([process.execPath, "x", "tsc", "-p", config], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([tsc.stdout.text(), tsc.stderr.text(), tsc.exited]);
    expect(`${out}${err}`).toBe("");
    expect(code).toBe(0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
