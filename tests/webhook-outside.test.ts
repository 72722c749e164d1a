/** The webhook sink as its README section has a user write it, checked from outside: `main.ts --check`. */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { runMain } from "./reliability-process.ts";

async function check(headers: string) {
  const dir = await tempDir("kubemeta-webhook-outside-");
  const yaml = [
    "cluster: { name: outside }",
    "http: { address: 127.0.0.1 }",
    "sources: []",
    "sinks:",
    "  - type: webhook",
    "    url: http://127.0.0.1:9/kubemeta",
    "    secret: 0123456789abcdef0123",
    `    headers: ${headers}`,
  ].join("\n");
  await Bun.write(join(dir, "kubemeta.yaml"), yaml);
  return runMain(["--check", "--config", join(dir, "kubemeta.yaml")], { cwd: dir });
}

test("headers written as a list, as curl's -H is, are a config error (were sent as a header named 0)", async () => {
  const listed = await check('["Authorization: Bearer gateway-token"]');
  expect({ code: listed.code, stdout: listed.stdout }).toEqual({ code: 1, stdout: "" });
  expect(listed.stderr).toContain("sinks[0].headers: ");
  expect(listed.stderr).toContain("write a mapping");
  // Nor is a value echoed: a header's is often a credential.
  expect(listed.stderr).not.toContain("gateway-token");
  expect((await check("[]")).code).toBe(1);
  const mapped = await check("{ Authorization: Bearer gateway-token }");
  expect({ code: mapped.code, stdout: mapped.stdout }).toEqual({ code: 0, stdout: "config is valid\n" });
});
