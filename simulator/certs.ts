/**
 * A throwaway PKI for the test API server: one CA, a server certificate for
 * 127.0.0.1/localhost and a client certificate, made with the `openssl` CLI (present on
 * every machine here; WebCrypto cannot issue X.509).
 *
 * Made once and kept in one directory under the system temp dir, which later processes
 * reuse: a directory per process would pile up, because under `bun test` (1.4.4) the
 * process "exit" and "beforeExit" handlers that would remove it never run.
 */
import { mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestPki {
  dir: string;
  caPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  clientCertPem: string;
  clientKeyPem: string;
  /** Files, for tools that want paths (NODE_EXTRA_CA_CERTS, kubeconfig client-certificate). */
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

/** The client certificate's subject: what a real API server would take as user and group. */
export const CLIENT_CERT_SUBJECT = "/O=system:masters/CN=kubemeta-test";

let cached: Promise<TestPki> | undefined;

/** P-256 keys: as valid for kube-apiserver as RSA, and generated in milliseconds instead of ~0.5 s. */
const KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/** Parallel issuance cannot share an `-CAcreateserial` file; a random serial is what a CA should use anyway. */
function serial(): string {
  return `0x${Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex")}`;
}

/** Bump when what is generated changes, so that no process reuses an older kind of PKI. */
const SHARED_DIR = join(tmpdir(), `kubemeta-test-pki-v1-${process.getuid?.() ?? 0}`);
const FILES = ["ca.crt", "server.crt", "server.key", "client.crt", "client.key"] as const;

/** The PKI, created on first use (or read from the directory a previous process left). */
export function testPki(): Promise<TestPki> {
  cached ??= createPki().catch((error: unknown) => {
    cached = undefined;
    throw error;
  });
  return cached;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const proc = Bun.spawn(["openssl", ...args], { cwd, stdout: "ignore", stderr: "pipe" });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`openssl ${args[0]} failed (${code}): ${stderr.trim()}`);
}

async function issue(dir: string, name: string, subject: string, extensions: string): Promise<void> {
  await writeFile(join(dir, `${name}.ext`), extensions);
  await openssl(
    ["req", "-new", ...KEY, "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject],
    dir,
  );
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-set_serial",
      serial(),
      "-days",
      "3650",
      "-sha256",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.crt`,
    ],
    dir,
  );
}

async function generate(dir: string): Promise<void> {
  await openssl(
    [
      "req",
      "-x509",
      ...KEY,
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "3650",
      "-subj",
      "/CN=kubemeta-test-ca",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  await Promise.all([
    issue(
      dir,
      "server",
      "/CN=kube-apiserver",
      "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n" +
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    ),
    issue(
      dir,
      "client",
      CLIENT_CERT_SUBJECT,
      "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    ),
  ]);
}

/** The PKI in `dir`, or undefined when any file is missing or empty. */
async function read(dir: string): Promise<TestPki | undefined> {
  const pems = await Promise.all(FILES.map((file) => readFile(join(dir, file), "utf8").catch(() => "")));
  if (pems.some((pem) => !pem.includes("-----BEGIN"))) return undefined;
  const [caPem, serverCertPem, serverKeyPem, clientCertPem, clientKeyPem] = pems as [
    string,
    string,
    string,
    string,
    string,
  ];
  return {
    dir,
    caPem,
    serverCertPem,
    serverKeyPem,
    clientCertPem,
    clientKeyPem,
    caFile: join(dir, "ca.crt"),
    serverCertFile: join(dir, "server.crt"),
    serverKeyFile: join(dir, "server.key"),
    clientCertFile: join(dir, "client.crt"),
    clientKeyFile: join(dir, "client.key"),
  };
}

async function createPki(): Promise<TestPki> {
  const existing = await read(SHARED_DIR);
  if (existing) return existing;
  const dir = await mkdtemp(join(tmpdir(), "kubemeta-test-pki-"));
  await generate(dir);
  // Publish atomically; if another process published first, use theirs.
  const published = await rename(dir, SHARED_DIR).then(
    () => true,
    () => false,
  );
  const shared = await read(SHARED_DIR);
  if (shared) {
    if (!published) await rm(dir, { recursive: true, force: true });
    return shared;
  }
  return (await read(dir))!;
}
