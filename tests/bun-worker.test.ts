/**
 * Bun Worker quirks (1.4.4) that the threads of sdk/thread.ts (the store's writer, the parse threads), the
 * checkpoint worker and their tests work around, shown on bare workers so a Bun upgrade that
 * changes them is noticed.
 * Each runs in a child process: two of them end a process or hang its test file for good.
 */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

/** A worker that echoes, fails on request, or answers late. */
const ECHO_WORKER = `
self.onmessage = (event) => {
  if (event.data === "throw") throw new Error("thrown in the worker");
  if (event.data === "reject") return void Promise.reject(new Error("rejected in the worker"));
  if (event.data === "late") return void setTimeout(() => self.postMessage("late"), 300);
  self.postMessage(event.data);
};
`;
const ASK = `
const worker = new Worker(new URL("./worker.js", import.meta.url).href);
const ask = (message) => new Promise((resolve) => {
  worker.addEventListener("message", (event) => resolve(event.data), { once: true });
  worker.postMessage(message);
});
`;

/** The child's output and exit code; killed after `killAfterMs` (a hung test file never ends). */
async function runIn(files: Record<string, string>, args: string[], killAfterMs = 10_000): Promise<string> {
  const dir = await tempDir("kubemeta-bun-worker-");
  dirs.push(dir);
  await Bun.write(join(dir, "worker.js"), ECHO_WORKER);
  for (const [name, text] of Object.entries(files)) await Bun.write(join(dir, name), text);
  const child = Bun.spawn([process.execPath, ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => child.kill(), killAfterMs);
  const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  clearTimeout(timer);
  return `${stdout}${stderr}\nexit ${await child.exited}`;
}

test("expect(promise).resolves/.rejects blocks in a nested loop that runs timers but delivers no worker message: " +
  "a store commit must be awaited, then checked", async () => {
  const output = await runIn(
    {
      "quirk.test.js": `import { expect, test } from "bun:test";
${ASK}
test("awaited plainly", async () => { expect(await ask("a")).toBe("a"); });
test("inside expect().resolves", async () => {
  await ask("b");
  setTimeout(() => console.log("timer fired"), 50);
  const checking = expect(ask("c")).resolves.toBe("c");
  console.log("expect returned");
  await checking;
}, 1000);
test("afterwards, awaited plainly again", async () => { expect(await ask("d")).toBe("d"); }, 1000);
`,
    },
    ["test", "./quirk.test.js"],
    4_000,
  );
  expect(output).toContain("(pass) awaited plainly");
  expect(output).toContain("timer fired");
  expect(output).not.toContain("expect returned");
  expect(output).toMatch(/\(fail\) inside expect\(\)\.resolves.*\n.*timed out/);
  // The file's worker replies stay stuck behind the blocked expect().
  expect(output).toContain("(fail) afterwards, awaited plainly again");
}, 30_000);

test("a crashed worker fires close, code 0 after an unhandled rejection: only an unasked close tells", async () => {
  const output = await runIn(
    {
      "main.js": `
for (const how of ["throw", "reject"]) {
  const worker = new Worker(new URL("./worker.js", import.meta.url).href);
  const events = [];
  worker.addEventListener("error", () => events.push("error"));
  await new Promise((resolve) => {
    worker.addEventListener("close", (event) => { events.push("close " + event.code); resolve(); });
    worker.postMessage(how);
  });
  console.log(how + ": " + events.join(", "));
}
`,
    },
    ["main.js"],
  );
  expect(output).toContain("throw: error, close 1");
  expect(output).toContain("reject: error, close 0");
});

test("an unreferenced worker lets the process exit, code 0, while a reply from it is awaited", async () => {
  const main = `${ASK}
worker.unref();
if (process.argv[2] === "ref") worker.ref();
// Not a top-level await: that one keeps the process alive by itself.
ask("late").then((answer) => { console.log("answer: " + answer); worker.terminate(); });
`;
  const output = await runIn({ "main.js": main }, ["main.js"]);
  expect(output).not.toContain("answer:");
  expect(output).toContain("exit 0");
  // ref() while a reply is out keeps the process alive: what writer.ts does.
  expect(await runIn({ "main.js": main }, ["main.js", "ref"])).toContain("answer: late");
});

// The abort comes when the call returns to JS: neon (libSQL's binding) finds the termination pending and panics.
test("terminate() while a worker is in a libSQL call aborts the whole process: end libSQL workers idle", async () => {
  const client = import.meta.resolve("@libsql/client");
  const output = await runIn(
    {
      "libsql-worker.js": `import { createClient } from ${JSON.stringify(client)};
const db = createClient({ url: "file:" + new URL("./t.db", import.meta.url).pathname });
self.onmessage = async () => {
  const sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 3000000) SELECT max(i) FROM n";
  self.postMessage("running");
  self.postMessage(await db.execute(sql));
};
`,
      "main.js": `
const worker = new Worker(new URL("./libsql-worker.js", import.meta.url).href);
const terminate = () => { console.log("terminating"); worker.terminate(); };
worker.addEventListener("message", () => setTimeout(terminate, 100), { once: true });
worker.postMessage("go");
`,
    },
    ["main.js"],
  );
  expect(output).toContain("terminating");
  expect(output).toMatch(/panicked|abort/);
  expect(output).not.toContain("exit 0");
});

test("a dead worker keeps what it references: a kept libSQL statement holds its transaction's lock", async () => {
  const libsql = JSON.stringify(import.meta.resolve("libsql"));
  const files = {
    "dying-writer.js": `import Database from ${libsql};
let db;
const kept = new Map();
// What the store's writer does about it (plugins/stores/libsql/writer-worker.ts).
if (process.argv[2] === "roll-back") self.addEventListener("error", () => db.exec("ROLLBACK"));
self.onmessage = (event) => {
  db = new Database(event.data, { timeout: 1000 });
  db.exec("BEGIN IMMEDIATE");
  kept.set("insert", db.prepare("INSERT INTO t VALUES (?)"));
  kept.get("insert").run([1]);
  setTimeout(() => { throw new Error("a bug"); });
};
`,
    "main.js": `import Database from ${libsql};
const path = new URL("./" + process.argv[2] + ".db", import.meta.url).pathname;
const setup = new Database(path);
setup.exec("PRAGMA journal_mode = WAL");
setup.exec("CREATE TABLE t (x)");
setup.close();
const worker = new Worker(new URL("./dying-writer.js", import.meta.url).href, { argv: [process.argv[2]] });
await new Promise((resolve) => { worker.addEventListener("close", resolve); worker.postMessage(path); });
const next = new Database(path, { timeout: 300 });
try {
  next.exec("BEGIN IMMEDIATE");
  next.prepare("INSERT INTO t VALUES (?)").run([2]);
  next.exec("COMMIT");
  console.log("next writer: " + JSON.stringify(next.prepare("SELECT x FROM t").all()));
} catch (error) {
  console.log("next writer: " + error.message);
}
`,
  };
  expect(await runIn(files, ["main.js", "as-is"])).toContain("next writer: database is locked");
  const rolledBack = await runIn(files, ["main.js", "roll-back"]);
  expect(rolledBack).toContain('next writer: [{"x":2}]');
});
