/**
 * A sink plugin's `ctx.metrics`, as README's "What `ctx` offers" promises it: a label name Prometheus does not allow
 * throws, so that /metrics stays valid. `le` on a histogram is one (its buckets' label: a series given its own would
 * be written with two `le`, a sample Prometheus refuses), and so is any name starting with `__` (Prometheus's own).
 */
import { expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { startTestHost, tempDir } from "../testing/index.ts";
import { installCheckout } from "./readme-setup.ts";

const PLUGIN = `import { defineSink, v } from "kubemeta/sdk";

export default defineSink({
  type: "labels",
  description: "Registers metrics with the labels it is given.",
  schema: v.strictObject({}),
  example: {},
  create(_config, ctx) {
    const attempt = (what: string, call: () => void) => {
      try {
        call();
        ctx.logger.info(\`\${what}: taken\`);
      } catch (error) {
        ctx.logger.info(\`\${what}: \${String(error)}\`);
      }
    };
    const seconds = ctx.metrics.histogram("labels_delivery_seconds", "Time to deliver.", [0.1, 1]);
    attempt("le", () => seconds.observe(0.5, { le: "x" }));
    attempt("__x", () => ctx.metrics.counter("labels_sent_total", "Sent.").inc({ __x: "y" }));
    attempt("le on a counter", () => ctx.metrics.counter("labels_kept_total", "Kept.").inc({ le: "1" }));
    return { async start() {}, async stop() {} };
  },
});
`;

test("a label name Prometheus does not allow throws, and /metrics stays valid", async () => {
  const dir = await tempDir("kubemeta-plugin-metrics-");
  await installCheckout(dir);
  await Bun.write(join(dir, "labels.ts"), PLUGIN);
  const said: string[] = [];
  const logger = {
    debug() {},
    info: (msg: string) => said.push(msg),
    warn() {},
    error() {},
    child: () => logger,
  };
  const th = await startTestHost({ dir, logger, sinks: [{ type: "./labels.ts" }] });
  try {
    expect(said.filter((line) => /^(le|__x|le on a counter): /.test(line))).toEqual([
      'le: RangeError: metric label name "le" is not one of a histogram: its buckets\' label',
      '__x: RangeError: metric label name "__x" is not one: names starting with __ are Prometheus\'s own',
      "le on a counter: taken",
    ]);
    const text = await fetch(`${th.url}/metrics`).then((r) => r.text());
    expect(text.split("\n").filter((line) => line.includes('le="x"') || line.includes("__x"))).toEqual([]);
    expect(text).toContain('labels_kept_total{le="1"} 1');
  } finally {
    await th.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});
