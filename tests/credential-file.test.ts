/**
 * sdk/credential-file.ts: a credential file is read only if it is a regular file (through symbolic links, as
 * Kubernetes mounts a Secret) of at most 1 MiB; anything else is said at once, and never blocks a thread.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { MOUNTED_FILE_MAX_BYTES } from "../sdk/bounded-read.ts";
// As a plugin imports them, from kubemeta/sdk.
import { readCredentialFile, readCredentialFileSync } from "kubemeta/sdk";
import { until } from "../protocol/retry.ts";
import { tempDir } from "../testing/index.ts";

let dir: string;
let socket: ReturnType<typeof Bun.listen>;

beforeAll(async () => {
  dir = await tempDir("kubemeta-credential-file-");
  expect(Bun.spawnSync(["mkfifo", join(dir, "fifo")]).exitCode).toBe(0);
  socket = Bun.listen({ unix: join(dir, "socket"), socket: { data() {} } });
});

afterAll(async () => {
  socket.stop(true);
  await rm(dir, { recursive: true, force: true });
});

const variants = [
  ["readCredentialFile", readCredentialFile],
  ["readCredentialFileSync", async (key: string, path: string) => readCredentialFileSync(key, path)],
] as const;

describe.each(variants)("%s", (name, read) => {
  const text = async (path: string) => (await read("tokenFile", path)).toString("utf8");

  test("a Secret's key as Kubernetes mounts it (a link through ..data/) is read, and again once updated", async () => {
    const mount = join(dir, `secret-${name}`);
    await mkdir(join(mount, "..2025_01"), { recursive: true });
    await writeFile(join(mount, "..2025_01", "token"), "first");
    await symlink("..2025_01", join(mount, "..data"));
    await symlink("..data/token", join(mount, "token"));
    expect(await text(join(mount, "token"))).toBe("first");
    // The kubelet's update: a new directory, and ..data swapped to it at once.
    await mkdir(join(mount, "..2025_02"));
    await writeFile(join(mount, "..2025_02", "token"), "second");
    await symlink("..2025_02", join(mount, "..data_tmp"));
    await rename(join(mount, "..data_tmp"), join(mount, "..data"));
    expect(await text(join(mount, "token"))).toBe("second");
  });

  test("what is no regular file is said as what it is, at once, naming the key and the path", async () => {
    const cases = [
      ["fifo", "a FIFO"],
      [".", "a directory"],
      ["socket", "a socket"],
      ["/dev/zero", "a character device"],
    ] as const;
    for (const [name, kind] of cases) {
      const path = name.startsWith("/") ? name : join(dir, name);
      await expect(read("tokenFile", path)).rejects.toThrow(`tokenFile ${path} is ${kind}, not a regular file`);
    }
    const link = join(dir, `fifo-link-${name}`);
    await symlink(join(dir, "fifo"), link);
    await expect(read("tokenFile", link)).rejects.toThrow(`tokenFile ${link} is a FIFO, not a regular file`);
  });

  test("a FIFO refused again and again leaves Bun's file pool free: another file read completes", async () => {
    for (let i = 0; i < 4; i++) await expect(read("credsFile", join(dir, "fifo"))).rejects.toThrow("a FIFO");
    const regular = join(dir, "regular");
    await writeFile(regular, "x");
    expect(await until(readFile(regular, "utf8"), Date.now() + 5_000)).toBe("x");
  });

  test("a missing file: the read's error code", async () => {
    const missing = join(dir, "missing");
    await expect(read("nkeySeedFile", missing)).rejects.toThrow(`cannot read nkeySeedFile ${missing}: ENOENT`);
  });

  test("1 MiB is read whole; a byte more is refused", async () => {
    const path = join(dir, `large-${name}`);
    await writeFile(path, Buffer.alloc(MOUNTED_FILE_MAX_BYTES, "a"));
    expect((await read("tls.caFile", path)).length).toBe(MOUNTED_FILE_MAX_BYTES);
    await writeFile(path, Buffer.alloc(MOUNTED_FILE_MAX_BYTES + 1, "a"));
    await expect(read("tls.caFile", path)).rejects.toThrow(
      `tls.caFile ${path} is larger than 1 MiB, the most a credential file may hold`,
    );
  });

  test("an empty file is read as empty", async () => {
    const path = join(dir, `empty-${name}`);
    await writeFile(path, "");
    expect((await read("tokenFile", path)).length).toBe(0);
  });
});
