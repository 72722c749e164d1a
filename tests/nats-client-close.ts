/**
 * A node agent's process that closes its NATS connection without stopping its subscription
 * (tests/client-nats.test.ts): nothing of the client library may keep it alive after that.
 */
import { connect } from "@nats-io/transport-node";
import { subscribeNats } from "../client/index.ts";

const nc = await connect({ servers: process.env.NATS_URL });
subscribeNats({ nc, cluster: "test", streams: ["shared"], retry: { initialMs: 10, maxMs: 20 } });
await nc.close();
process.stderr.write("closed\n");
