/** The built-in plugins, by kind. A config entry's `type` names one of these, or a module path. */
import type { PluginRegistry } from "../sdk/contract.ts";
import kubernetes from "./sources/kubernetes.ts";
import libsql from "./stores/libsql.ts";
import nats from "./sinks/nats.ts";
import sse from "./sinks/sse.ts";
import webhook from "./sinks/webhook.ts";
import jsonl from "./sinks/jsonl.ts";

export const builtins: PluginRegistry = {
  source: [kubernetes],
  store: [libsql],
  sink: [sse, nats, webhook, jsonl],
};
