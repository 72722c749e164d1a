/**
 * Writes over HTTP: POST to a collection, PUT and DELETE of one object, answered as kube-apiserver's generic
 * registry answers them (k8s.io/apiserver registry/generic/registry/store.go: optimistic concurrency on
 * resourceVersion, create-on-update where the strategy allows it, a no-op update writes nothing), for the types
 * whose registry strategy is written here. Only Leases (pkg/registry/coordination/lease): leader election
 * needs them, and the other types are written from TypeScript (index.ts) and answer 405 over HTTP.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { KubeObject } from "../sdk/model.ts";
import { sendJson, sendStatus } from "./http.ts";
import { apiVersionOf, type ResourceType } from "./resource-types.ts";
import { serialize } from "./serialize.ts";
import {
  alreadyExists,
  badRequest,
  conflict,
  invalid,
  objectNotFound,
  requestTooLarge,
  type FieldError,
  type Status,
} from "./status.ts";
import type { ObjectStore } from "./store.ts";

export type WriteVerb = "create" | "update" | "delete";

/** A JSON body that is not the type's Go struct: the decoder's 400. */
class DecodeError extends Error {}

/** What a registry strategy decides for its type (rest.RESTCreateStrategy / RESTUpdateStrategy). */
interface Strategy {
  /** Everything after metadata, as the server writes it back (Go field order, canonical formats). */
  decode(input: Record<string, unknown>): Record<string, unknown>;
  validate(body: Record<string, unknown>): FieldError[];
  allowCreateOnUpdate: boolean;
  allowUnconditionalUpdate: boolean;
}

/** metav1.MicroTime on the wire: RFC 3339 with microseconds, UTC ("2006-01-02T15:04:05.000000Z07:00"). */
function microTime(value: unknown, field: string): string {
  const parts =
    typeof value === "string"
      ? /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(value)
      : null;
  const seconds = parts && new Date(`${parts[1]}${parts[3]}`);
  if (!parts || !seconds || Number.isNaN(seconds.getTime())) {
    throw new DecodeError(`parsing time ${JSON.stringify(value)} in field ${field}: not RFC 3339`);
  }
  return `${seconds.toISOString().slice(0, 19)}.${(parts[2] ?? "").padEnd(6, "0").slice(0, 6)}Z`;
}

function typed(value: unknown, field: string, goType: "string" | "int32"): unknown {
  const ok = goType === "string" ? typeof value === "string" : Number.isInteger(value);
  if (!ok)
    throw new DecodeError(`json: cannot unmarshal ${typeof value} into Go struct field ${field} of type ${goType}`);
  return value;
}

/** coordination/v1 LeaseSpec, its fields in struct order; unknown fields are dropped, as fieldValidation=Warn does. */
const LEASE: Strategy = {
  decode(input) {
    const spec = (input.spec ?? {}) as Record<string, unknown>;
    if (typeof spec !== "object" || Array.isArray(spec)) throw new DecodeError("json: spec is not an object");
    const out: Record<string, unknown> = {};
    const set = (field: string, convert: (value: unknown, path: string) => unknown) => {
      const value = spec[field];
      if (value !== undefined && value !== null) out[field] = convert(value, `LeaseSpec.spec.${field}`);
    };
    set("holderIdentity", (value, path) => typed(value, path, "string"));
    set("leaseDurationSeconds", (value, path) => typed(value, path, "int32"));
    set("acquireTime", microTime);
    set("renewTime", microTime);
    set("leaseTransitions", (value, path) => typed(value, path, "int32"));
    set("strategy", (value, path) => typed(value, path, "string"));
    set("preferredHolder", (value, path) => typed(value, path, "string"));
    return { spec: out };
  },
  // pkg/apis/coordination/validation: ValidateLeaseSpec.
  validate({ spec }) {
    const { leaseDurationSeconds: duration, leaseTransitions: transitions } = spec as Record<string, number>;
    const errors: FieldError[] = [];
    if (duration !== undefined && duration <= 0) {
      const message = `Invalid value: ${duration}: must be greater than 0`;
      errors.push({ field: "spec.leaseDurationSeconds", reason: "FieldValueInvalid", message });
    }
    if (transitions !== undefined && transitions < 0) {
      const message = `Invalid value: ${transitions}: must be greater than or equal to 0`;
      errors.push({ field: "spec.leaseTransitions", reason: "FieldValueInvalid", message });
    }
    return errors;
  },
  allowCreateOnUpdate: true,
  allowUnconditionalUpdate: false,
};

const STRATEGIES = new Map<string, Strategy>([["coordination.k8s.io/v1/leases", LEASE]]);
const strategyOf = (type: ResourceType) => STRATEGIES.get(`${apiVersionOf(type)}/${type.resource}`);

/** The verb of a write, when the method and path make one the type takes over HTTP. */
export function writeVerb(
  method: string | undefined,
  target: { kind: "collection" | "object"; type: ResourceType; namespace: string | null },
): WriteVerb | undefined {
  // A namespaced type's cluster-wide path serves LIST and WATCH only.
  if (!strategyOf(target.type) || (target.type.namespaced && target.namespace === null)) return undefined;
  if (target.kind === "collection") return method === "POST" ? "create" : undefined;
  return method === "PUT" ? "update" : method === "DELETE" ? "delete" : undefined;
}

/** apiserver's MaxRequestBodyBytes. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<string | Status> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return requestTooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Metadata a client may set; the server owns the rest (uid, resourceVersion, creationTimestamp…). */
const CLIENT_METADATA = ["name", "generateName", "labels", "annotations", "ownerReferences", "finalizers"];

interface Request {
  type: ResourceType;
  namespace: string | null;
  /** The name on the URL; none for a create. */
  name?: string;
}

/** A write's response: an object or a Success Status with its code, or a failure Status. */
type Answer = { code: 200 | 201; body: unknown } | { status: Status };

export class Writes {
  constructor(private readonly store: ObjectStore) {}

  /** Reads the body, then answers synchronously: nothing else touches the store between the checks and the write. */
  async serve(req: IncomingMessage, res: ServerResponse, verb: WriteVerb, request: Request): Promise<void> {
    const body = await readBody(req);
    const answer =
      typeof body !== "string"
        ? { status: body }
        : verb === "delete"
          ? this.delete(request, body)
          : this.write(verb, request, body);
    if ("status" in answer) sendStatus(res, answer.status);
    else sendJson(res, answer.code, answer.body);
  }

  private write(verb: "create" | "update", request: Request, body: string): Answer {
    const { type } = request;
    let input: Record<string, unknown>;
    try {
      input = JSON.parse(body) as Record<string, unknown>;
      if (typeof input !== "object" || input === null || Array.isArray(input)) throw new Error("not an object");
    } catch (error) {
      const why = `couldn't get version/kind; json parse error: ${(error as Error).message}`;
      return { status: badRequest(`the object provided is unrecognized (must be of type ${type.kind}): ${why}`) };
    }
    if ((input.kind ?? type.kind) !== type.kind || (input.apiVersion ?? apiVersionOf(type)) !== apiVersionOf(type)) {
      const given = `${input.apiVersion ?? ""}, Kind=${input.kind ?? ""}`;
      return { status: badRequest(`the object provided is ${given}, not ${apiVersionOf(type)}, Kind=${type.kind}`) };
    }
    const strategy = strategyOf(type)!;
    const checked = this.canonical(request, input, strategy);
    if ("status" in checked) return checked;
    const { object } = checked;
    const name = object.metadata!.name as string;
    const existing = this.store.entry(type, request.namespace, name);
    if (verb === "update" && existing) {
      const rv = (input.metadata as { resourceVersion?: unknown } | undefined)?.resourceVersion;
      if (!rv && !strategy.allowUnconditionalUpdate) {
        // registry/store.go names the resource where a Kind belongs, and prints the uint64 0 with %#v.
        const message = "Invalid value: 0x0: must be specified for an update";
        const error: FieldError = { field: "metadata.resourceVersion", reason: "FieldValueInvalid", message };
        return { status: invalid(type.group, type.resource, name, [error]) };
      }
      if (rv && rv !== String(existing.rv)) return { status: conflict(type.resource, type.group, name) };
    }
    const errors = strategy.validate(object as Record<string, unknown>);
    if (errors.length > 0) return { status: invalid(type.group, type.kind, name, errors) };
    if (!existing) {
      if (verb === "update" && !strategy.allowCreateOnUpdate) {
        return { status: objectNotFound(type.resource, type.group, name) };
      }
      return { code: 201, body: this.store.create(object) };
    }
    if (verb === "create") return { status: alreadyExists(type.resource, type.group, name) };
    // etcd3's GuaranteedUpdate skips a write whose bytes equal the stored ones: same object, same resourceVersion.
    const kept = {
      uid: existing.uid,
      resourceVersion: String(existing.rv),
      creationTimestamp: existing.creationTimestamp,
    };
    const unchanged = serialize(type, object, { ...object.metadata, ...kept }, () => existing.generation);
    if (unchanged.json === existing.json) return { code: 200, body: existing.json };
    return { code: 200, body: this.store.update(object) };
  }

  /**
   * The object as the store takes it: the type's kind, the client's metadata checked against the URL, and the
   * body the strategy decodes; or the Status of a request the server refuses before any registry check.
   */
  private canonical(
    { type, namespace, name }: Request,
    input: Record<string, unknown>,
    strategy: Strategy,
  ): { object: KubeObject } | { status: Status } {
    const given = (input.metadata ?? {}) as Record<string, unknown>;
    const metadata: Record<string, unknown> = {};
    for (const field of CLIENT_METADATA) if (given[field] !== undefined) metadata[field] = given[field];
    if (given.namespace !== undefined && given.namespace !== "" && given.namespace !== namespace) {
      const message = "the namespace of the provided object does not match the namespace sent on the request";
      return { status: badRequest(message) };
    }
    if (namespace !== null) metadata.namespace = namespace;
    if (name !== undefined) {
      if (metadata.name !== undefined && metadata.name !== name) {
        const message = `the name of the object (${metadata.name}) does not match the name on the URL (${name})`;
        return { status: badRequest(message) };
      }
      metadata.name = name;
    } else if (!metadata.name && typeof metadata.generateName === "string" && metadata.generateName) {
      metadata.name = `${metadata.generateName}${crypto.randomUUID().replaceAll("-", "").slice(0, 5)}`;
    }
    if (typeof metadata.name !== "string" || !metadata.name) {
      const message = "Required value: name or generateName is required";
      const error: FieldError = { field: "metadata.name", reason: "FieldValueRequired", message };
      return { status: invalid(type.group, type.kind, "", [error]) };
    }
    try {
      return { object: { kind: type.kind, apiVersion: apiVersionOf(type), metadata, ...strategy.decode(input) } };
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      const message = `${type.kind} in version "${type.version}" cannot be handled as a ${type.kind}: ${error.message}`;
      return { status: badRequest(message) };
    }
  }

  /** A Success Status (the Lease registry does not return the deleted object), after DeleteOptions' preconditions. */
  private delete({ type, namespace, name = "" }: Request, body: string): Answer {
    const existing = this.store.entry(type, namespace, name);
    if (!existing) return { status: objectNotFound(type.resource, type.group, name) };
    let options: { preconditions?: { resourceVersion?: string; uid?: string } } = {};
    try {
      if (body.trim()) options = JSON.parse(body) as typeof options;
    } catch (error) {
      return { status: badRequest(`the body of the request was in an unknown format: ${(error as Error).message}`) };
    }
    const { uid, resourceVersion: rv } = options.preconditions ?? {};
    const failed =
      uid !== undefined && uid !== existing.uid
        ? `UID in precondition: ${uid}, UID in object meta: ${existing.uid}`
        : rv !== undefined && rv !== String(existing.rv)
          ? `ResourceVersion in precondition: ${rv}, ResourceVersion in object meta: ${existing.rv}`
          : undefined;
    if (failed) return { status: conflict(type.resource, type.group, name, `Precondition failed: ${failed}`) };
    this.store.delete(type, namespace, name);
    const details = { name, ...(type.group ? { group: type.group } : {}), kind: type.resource, uid: existing.uid };
    return { code: 200, body: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", details } };
  }
}
