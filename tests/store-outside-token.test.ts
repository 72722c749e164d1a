/**
 * `store.authToken` as an operator gives it: from a Secret through an environment variable, often with the line break
 * the file it was made from ends with (`echo $TOKEN > token`). HTTP drops it (fetch trims a header's value); over
 * WebSocket the token travels in Hrana's `hello`, as is, and the server refused it.
 */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { runMain, spawnHranaServer } from "./reliability-process.ts";

const dirs: string[] = [];
const servers: { stop(): Promise<void> }[] = [];
afterAll(async () => {
  for (const server of servers) await server.stop();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

test("a token with the line break its Secret's file ended with is taken over http:// and ws:// alike", async () => {
  const dir = await tempDir("kubemeta-store-token-");
  dirs.push(dir);
  const server = await spawnHranaServer(join(dir, "remote.db"), { token: "s3cret-token" });
  servers.push(server);
  for (const url of [server.url, `ws://127.0.0.1:${server.port}`]) {
    const config = join(dir, "kubemeta.yaml");
    await Bun.write(config, `store: { type: libsql, url: "${url}", authToken: "\${LIBSQL_AUTH_TOKEN}" }\n`);
    const check = (token: string) => runMain(["--check", "--config", config], { env: { LIBSQL_AUTH_TOKEN: token } });
    const taken = await check("s3cret-token\n");
    expect({ url, code: taken.code, stdout: taken.stdout }).toEqual({ url, code: 0, stdout: "config is valid\n" });
    // Another token is refused still, the line break or not.
    const refused = await check("other-token\n");
    expect({ url, code: refused.code }).toEqual({ url, code: 1 });
    expect(refused.stderr).toContain("refused the auth token");
    expect(refused.stderr).not.toContain("other-token");
  }
});
