/** The SDK's `appendLines` (sdk/append-lines.ts), as examples/sink-plugin's deletions sink appends its audit lines. */
import { expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { SDK } from "./reliability-process.ts";

test("on a full disk (a file-size limit) it writes whole lines or none: the file ends a line", async () => {
  const dir = await tempDir();
  const file = join(dir, "audit.log");
  // Lines of 1,000 bytes until a write fails, under a 4 KiB limit: the fifth is cut short (EFBIG), then cut back.
  const script = `
    import { appendLines } from ${JSON.stringify(SDK)};
    const line = "x".repeat(999) + "\\n";
    for (;;) await appendLines(process.env.FILE, line).catch((error) => { console.log(error.code); process.exit(0); });
  `;
  try {
    const child = Bun.spawn(
      ["bash", "-c", `trap '' XFSZ; ulimit -S -f 4; exec "$0" -e "$1"`, process.execPath, script],
      {
        env: { ...process.env, FILE: file },
        stdout: "pipe",
        stderr: "inherit",
      },
    );
    expect((await new Response(child.stdout).text()).trim()).toBe("EFBIG");
    expect(await child.exited).toBe(0);
    const text = await Bun.file(file).text();
    expect(text.split("\n").map((line) => line.length)).toEqual([999, 999, 999, 999, 0]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
