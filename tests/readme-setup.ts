/**
 * README.md as tests read it: its fenced blocks by the section they are in, and a folder of one's own with the checkout
 * installed in it as README installs it (`node_modules/kubemeta` linked, and the NATS client a consumer adds).
 */
import { mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..");

export interface Block {
  /** Its section's heading and its place among the section's blocks: what SKIPPED names. */
  key: string;
  lang: string;
  line: number;
  code: string;
}

/** The fenced blocks of a Markdown text (a `#` line inside one is no heading). */
export function fencedBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  let heading = "";
  let place = 0;
  let open: { lang: string; line: number; lines: string[] } | undefined;
  for (const [index, line] of text.split("\n").entries()) {
    const fence = /^\s*```(\w*)/.exec(line);
    if (open && !fence) open.lines.push(line);
    else if (open) {
      place += 1;
      const { lang, line: at, lines } = open;
      blocks.push({ key: `${heading}, block ${place} (${lang})`, lang, line: at, code: `${lines.join("\n")}\n` });
      open = undefined;
    } else if (fence) open = { lang: fence[1] || "text", line: index + 1, lines: [] };
    else if (/^#+ /.test(line)) [heading, place] = [line.replace(/^#+ /, ""), 0];
  }
  return blocks;
}

export const README_BLOCKS = fencedBlocks(await Bun.file(join(ROOT, "README.md")).text());

/** The code of README's block `key`, or a text that says it has none (which no test takes for code). */
export const readmeBlock = (key: string) =>
  README_BLOCKS.find((candidate) => candidate.key === key)?.code ?? `no block ${key}`;

/** Makes `dir` a folder of one's own with the checkout installed (README, "Load it by path"), NATS's client beside. */
export async function installCheckout(dir: string): Promise<void> {
  await mkdir(join(dir, "node_modules/@types"), { recursive: true });
  await mkdir(join(dir, "node_modules/@nats-io"));
  await symlink(ROOT, join(dir, "node_modules/kubemeta"));
  await symlink(join(ROOT, "node_modules/@types/bun"), join(dir, "node_modules/@types/bun"));
  const nats = "node_modules/@nats-io/transport-node";
  await symlink(join(ROOT, nats), join(dir, nats));
  await Bun.write(join(dir, "package.json"), '{ "type": "module" }\n');
}
