/**
 * deploy/'s manifests as a client holding the token meets them: however many SSE streams it opens and leaves unread,
 * their buffers and kubemeta's state of a large cluster fit the container's memory limit, so no client can get it
 * OOM-killed (README, GET /v1/watch: "The limits bound memory too").
 */
import { expect, test } from "bun:test";
import * as v from "valibot";
import sse from "../plugins/sinks/sse.ts";
import { manifestsOf, memoryLimitMib, shippedSseSink } from "./deploy-manifests.ts";

const MIB = 1 << 20;
/**
 * What a stream read by nobody holds beside its buffer: a batch of 500 real-size updates written into it as it filled,
 * and about its buffer again in Bun's response. Measured at 150,000 pods under a cgroup (bench/cgroup.ts): ~3 MiB a
 * stream at the default 1 MiB buffer, ~1.4 MiB at 256 KiB (README: GET /v1/watch).
 */
const streamBytes = (bufferBytes: number) => 2 * bufferBytes + MIB;
/** kubemeta's peak RSS in a sync of 150,000 real-size pods, 626–719 MiB over the machines of bench/RESULTS.md. */
const STATE_BYTES = 720 * MIB;

for (const file of ["kubemeta.yaml", "kubemeta-ha.yaml"]) {
  test(`deploy/${file}: every SSE stream full and the state of 150,000 pods fit limits.memory`, async () => {
    const manifests = await manifestsOf(file);
    const { type: _, ...entry } = shippedSseSink(manifests);
    const { maxStreams, bufferBytes } = v.parse(sse.schema, entry) as { maxStreams: number; bufferBytes: number };
    const streams = maxStreams * streamBytes(bufferBytes);
    expect(streams + STATE_BYTES).toBeLessThanOrEqual(memoryLimitMib(manifests) * MIB);
  });
}
