/**
 * kubemeta's client library: follow streams of updates over NATS or Server-Sent Events,
 * keep a local cache per stream (uid → envelope of the current object), and get
 * informer-style callbacks. The library checks `prev` on every update, asks for replays
 * when something was missed, and turns resets (a recreated store, a position older than
 * retention) into the adds, updates and deletes that bring the cache to the new state.
 *
 * @example A node agent over NATS (the connection stays yours):
 * ```ts
 * import { connect } from "@nats-io/transport-node";
 * import { subscribeNats } from "./index.ts";
 *
 * const nc = await connect({ servers: "nats://nats:4222", maxReconnectAttempts: -1 });
 * const agent = subscribeNats({
 *   nc,
 *   cluster: "prod-eu",
 *   streams: [`node/${process.env.NODE_NAME}`, "shared"],
 *   onAdd: (pod) => index(pod),
 *   onUpdate: (_old, pod) => index(pod),
 *   onDelete: (pod) => forget(pod.uid),
 * });
 * await agent.synced;
 * ```
 *
 * @example A UI over SSE (fetch: Bun, Node and browsers):
 * ```ts
 * const ui = subscribeSse({ url: "https://kubemeta.example.com", token, streams: ["all"], onSynced: render });
 * ```
 *
 * The README's "Client library" section has both examples whole and every option.
 *
 * Node.js (22.18+) imports these modules as they are, stripping their types: they hold only TypeScript that erases
 * (no parameter properties, enums or namespaces) and need no Bun types (tests/client-node.test.ts).
 */
export { subscribeNats, type NatsSubscribeOptions } from "./nats.ts";
export { subscribeSse, type SseSubscribeOptions } from "./sse.ts";
export type { InformerHandlers, ResetInfo, Subscription, SyncedInfo } from "./cache.ts";
export { decodeNodeToken, encodeNodeToken, isNodeName } from "../protocol/node-token.ts";
export { defaultPrefix } from "../protocol/subjects.ts";
export type { ReplayChunk, ReplayRequestMessage, ResetReason } from "../protocol/replay.ts";
export { ALL, NODE_PREFIX, SHARED } from "../protocol/streams.ts";
export type { ChangeType, Envelope, SlimObject } from "../protocol/envelope.ts";
