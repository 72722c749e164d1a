/**
 * README's Commands write each command as a fresh machine runs it (`node_modules/.bin/bun run main.ts …`, the Bun npm
 * installed), where `--help` writes `bun run main.ts …`, as in the container image, whose Bun is on the PATH: README
 * says once what `bun` there is, so that a user on a fresh machine who copies a line from --help is not left with
 * `bun: command not found`.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { runMain } from "./reliability-process.ts";

test("README's Commands quote the usage lines of --help and tail --help as written, and say what their bun is", async () => {
  const readme = await Bun.file(join(import.meta.dir, "..", "README.md")).text();
  const commands = readme.slice(readme.indexOf("\n## Commands\n"));
  const intro = commands.slice(0, commands.indexOf("\n\n", "\n## Commands\n".length));
  for (const args of [["--help"], ["tail", "--help"]]) {
    const { code, stdout } = await runMain(args);
    expect(code).toBe(0);
    const usage = /^Usage: (\S+ run main\.ts) /m.exec(stdout)?.[1];
    expect(usage).toBe("bun run main.ts");
    expect(intro).toContain(`\`${usage} …\``);
  }
  expect(intro).toContain("`node_modules/.bin/bun`");
});
