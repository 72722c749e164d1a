/**
 * The files a kubeconfig names (its user's token file, its cluster's CA) are read only if they are regular files
 * (sdk/credential-file.ts): at load, at each reload after a 401, and at each request. Read as they were, with
 * readFileSync, a FIFO nobody writes blocked the event loop itself, for ever.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { mkdir, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createLogger } from "../host/logger.ts";
import { until as within } from "../protocol/retry.ts";
import { startTestApiServer, type TestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";
import { inSync, RecordingSink, runSource, scratchDir, until } from "./source-kubernetes-recorder.ts";
import { fifoWithLateWriter } from "./fifo-writer.ts";

let server: TestApiServer;
let scratch: Awaited<ReturnType<typeof scratchDir>>;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  server = await startTestApiServer();
  populate(server, { nodes: 2, podsPerNode: 3 });
  scratch = await scratchDir();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  await server.stop();
  await scratch.remove();
});

/** A FIFO in `dir`, its late writer (tests/fifo-writer.ts) killed last, once the source has stopped. */
function fifoIn(dir: string, name: string, text: string): string {
  const fifo = join(dir, name);
  cleanups.unshift(fifoWithLateWriter(fifo, text).stop);
  return fifo;
}

/** Points `link` at `target` at once, as the kubelet swaps a Secret's files. */
async function repoint(link: string, target: string): Promise<void> {
  await symlink(target, `${link}.new`);
  await rename(`${link}.new`, link);
}

/** Another file read of the process, through Bun's file pool, completes within 3 s. */
async function expectFileReadsGoOn(dir: string): Promise<void> {
  const other = join(dir, "other");
  await writeFile(other, "read");
  expect(await within(readFile(other, "utf8"), Date.now() + 3_000)).toBe("read");
}

function recordingLogger(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level: "info", write: (line) => void lines.push(line) }) };
}

test("a token file that is a FIFO (through a link): the start fails at once saying so; file reads go on", async () => {
  const dir = join(scratch.dir, "start");
  await mkdir(dir);
  const link = join(dir, "token");
  await symlink(fifoIn(dir, "token.fifo", server.token), link);
  const kubeconfig = join(dir, "kubeconfig.yaml");
  await writeFile(kubeconfig, server.kubeconfig("token").replace(/token: .*/, `tokenFile: ${link}`));
  const began = Date.now();
  const started = await runSource(new RecordingSink(), { kubeconfig, resources: ["pods"] }).then(
    (running) => {
      cleanups.push(() => running.stop());
      return "started";
    },
    (error: Error) => error.message,
  );
  expect(started).toBe(`cannot load kubeconfig ${kubeconfig}: its token file ${link} is a FIFO, not a regular file`);
  expect(Date.now() - began).toBeLessThan(3_000);
  await expectFileReadsGoOn(dir);
});

test("a token file turned into a FIFO: each reload after a 401 refuses it; reads go on; then it syncs", async () => {
  const dir = join(scratch.dir, "reload");
  await Bun.write(join(dir, "not-the-token"), "not-the-token");
  const link = join(dir, "token");
  await symlink(join(dir, "not-the-token"), link);
  const kubeconfig = join(dir, "kubeconfig.yaml");
  await writeFile(kubeconfig, server.kubeconfig("token").replace(/token: .*/, `token-file: ${link}`));
  const { lines, logger } = recordingLogger();
  const running = await runSource(new RecordingSink(), { kubeconfig, resources: ["pods"] }, logger);
  cleanups.push(() => running.stop());
  const requests = running.metrics.counter("kubemeta_source_requests_total", "");
  await until(() => requests.get({ verb: "watch", resource: "pods", code: "401" }) >= 1, "a 401");

  await repoint(link, fifoIn(dir, "token.fifo", "not-the-token"));
  const refused = `its token file ${link} is a FIFO, not a regular file`;
  await until(
    () => lines.some((line) => line.includes("cannot reload the kubeconfig after a 401") && line.includes(refused)),
    "a reload that refuses the FIFO",
    10_000,
  );
  await expectFileReadsGoOn(dir);

  await Bun.write(join(dir, "the-token"), server.token);
  await repoint(link, join(dir, "the-token"));
  await until(() => running.isSynced(), "the sync with the token read from a regular file again", 10_000);
});

test("a CA file turned into a FIFO: each request refuses it, saying so; reads go on; then it watches", async () => {
  const dir = join(scratch.dir, "ca");
  await Bun.write(join(dir, "ca.pem"), server.caPem);
  const link = join(dir, "ca");
  await symlink(join(dir, "ca.pem"), link);
  const kubeconfig = join(dir, "kubeconfig.yaml");
  await writeFile(
    kubeconfig,
    server.kubeconfig("token").replace(/certificate-authority-data: .*/, `certificate-authority: ${link}`),
  );
  const { lines, logger } = recordingLogger();
  const sink = new RecordingSink();
  const running = await runSource(sink, { kubeconfig, resources: ["pods"] }, logger);
  cleanups.push(() => running.stop());
  await until(() => running.isSynced(), "the first sync", 10_000);

  await repoint(link, fifoIn(dir, "ca.fifo", server.caPem));
  server.dropWatches();
  const refused = `its certificate-authority ${link} is a FIFO, not a regular file`;
  await until(
    () => lines.some((line) => line.includes("list/watch failed; retrying") && line.includes(refused)),
    "a watch that refuses the FIFO",
    10_000,
  );
  await expectFileReadsGoOn(dir);

  await repoint(link, join(dir, "ca.pem"));
  populate(server, { nodes: 3, podsPerNode: 3 });
  await until(() => inSync(sink, server, "Pod"), "the pods created meanwhile, watched with the CA read again", 10_000);
});

test("a token file gone while every request is refused: one warning that a reload fails, then debug ones", async () => {
  const dir = join(scratch.dir, "gone");
  const file = join(dir, "token");
  await Bun.write(file, "not-the-token");
  const kubeconfig = join(dir, "kubeconfig.yaml");
  await writeFile(kubeconfig, server.kubeconfig("token").replace(/token: .*/, `tokenFile: ${file}`));
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (line) => void lines.push(line) });
  const running = await runSource(new RecordingSink(), { kubeconfig, resources: ["pods", "nodes"] }, logger);
  cleanups.push(() => running.stop());
  const requests = running.metrics.counter("kubemeta_source_requests_total", "");
  const refusals = () =>
    ["pods", "nodes"].reduce((sum, r) => sum + requests.get({ verb: "watch", resource: r, code: "401" }), 0);
  await until(() => refusals() >= 1, "a 401");
  await rm(file);
  const before = refusals();
  await until(() => refusals() >= before + 6, "six more 401s, each reloading the kubeconfig", 10_000);
  const reloads = lines.filter((line) => line.includes('"msg":"cannot reload the kubeconfig after a 401"'));
  const warned = reloads.filter((line) => line.includes('"level":"warn"'));
  expect(warned).toHaveLength(1);
  expect(warned[0]).toContain(`cannot read its token file ${file}: ENOENT`);
  expect(reloads.length).toBeGreaterThan(warned.length);

  // Back, its token still refused: the reload a 401 makes works, and says so.
  await Bun.write(file, "still-not-the-token");
  const again = () => lines.some((line) => line.includes('"msg":"the kubeconfig reloads again"'));
  await until(again, "a reload that works", 10_000);
  // The token the API server takes: read at the next request, the file having changed (tests/kubeconfig-token-file).
  await Bun.write(file, server.token);
  await until(() => running.isSynced(), "the sync with the token file back", 10_000);
});
