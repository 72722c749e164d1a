/**
 * metav1.Status bodies, with the field order, reasons and messages of a real
 * kube-apiserver (k8s.io/apimachinery/pkg/api/errors), so clients that switch on
 * `reason` or match messages behave as they would against a cluster.
 */

export interface StatusCause {
  reason?: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: { continue?: string };
  status: "Failure";
  message: string;
  reason: string;
  details?: StatusDetails;
  code: number;
}

export function failure(
  code: number,
  reason: string,
  message: string,
  details?: StatusDetails,
  metadata: Status["metadata"] = {},
): Status {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata,
    status: "Failure",
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

export const unauthorized = () => failure(401, "Unauthorized", "Unauthorized");

export const badRequest = (message: string) => failure(400, "BadRequest", message);

/** An unknown path or resource: the message of the API server's NotFound handler. */
export const pathNotFound = () => failure(404, "NotFound", "the server could not find the requested resource", {});

/** `leases.coordination.k8s.io`: a resource as apierrors names it (schema.GroupResource.String()). */
const qualified = (resource: string, group: string) => (group ? `${resource}.${group}` : resource);

/**
 * RBAC's denial, as kube-apiserver's authorization filter writes it (responsewriters.ForbiddenStatusError): the
 * client's user lacks the rule for this verb and resource (a ClusterRole without the kind, a CRD added later).
 */
export const forbidden = (request: { verb: string; resource: string; group: string; namespace: string | null }) => {
  const { verb, resource, group, namespace } = request;
  const where = namespace ? `in the namespace "${namespace}"` : "at the cluster scope";
  const user = "system:serviceaccount:kubemeta:kubemeta";
  return failure(
    403,
    "Forbidden",
    `${qualified(resource, group)} is forbidden: User "${user}" cannot ${verb} resource "${resource}" ` +
      `in API group "${group}" ${where}`,
    { ...(group ? { group } : {}), kind: resource },
  );
};

export const objectNotFound = (resource: string, group: string, name: string) =>
  failure(404, "NotFound", `${qualified(resource, group)} "${name}" not found`, {
    name,
    ...(group ? { group } : {}),
    kind: resource,
  });

export const methodNotAllowed = () =>
  failure(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {});

/** A watch from a resourceVersion the watch cache no longer holds (watch_cache.go). */
export const watchTooOld = (requested: number, oldest: number) =>
  failure(410, "Expired", `too old resource version: ${requested} (${oldest})`);

/** A LIST whose resourceVersion has been compacted. */
export const listTooOld = () => failure(410, "Expired", "The resourceVersion for the provided list is too old.");

/**
 * An expired continue token (etcd3 store, since v1.15): the Status carries a fresh
 * token that continues from the same key at the current state, "inconsistently".
 */
export const continueExpired = (inconsistentContinue: string) =>
  failure(
    410,
    "Expired",
    "The provided continue parameter is too old to display a consistent list result. " +
      "You can start a new list without the continue parameter, " +
      "or use the continue token in this response to retrieve the remainder of the results. " +
      "Continuing with the provided token results in an inconsistent list - objects that were created, modified, " +
      "or deleted between the time the first chunk was returned and now may show up in the list.",
    undefined,
    { continue: inconsistentContinue },
  );

/** A resourceVersion newer than the server has seen (cacher's waitUntilFreshAndBlock). */
export const tooLargeResourceVersion = (requested: number, current: number) =>
  failure(504, "Timeout", `Too large resource version: ${requested}, current: ${current}`, {
    causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }],
    retryAfterSeconds: 1,
  });

/** API Priority and Fairness rejecting a request; a proxy in front of it may say no Retry-After. */
export const tooManyRequests = (retryAfterSeconds?: number) =>
  failure(
    429,
    "TooManyRequests",
    "Too many requests, please try again later.",
    retryAfterSeconds === undefined ? {} : { retryAfterSeconds },
  );

export const internalError = (message: string) =>
  failure(500, "InternalError", `Internal error occurred: ${message}`, { causes: [{ message }] });

export const serviceUnavailable = (retryAfterSeconds?: number) =>
  failure(
    503,
    "ServiceUnavailable",
    "the server is currently unable to handle the request",
    retryAfterSeconds ? { retryAfterSeconds } : {},
  );

export interface FieldError {
  field: string;
  reason: "FieldValueForbidden" | "FieldValueNotSupported" | "FieldValueInvalid" | "FieldValueRequired";
  /** As field.Error.ErrorBody() writes it: "Forbidden: …", "Unsupported value: …", "Invalid value: …". */
  message: string;
}

/** 422 Invalid (apierrors.NewInvalid): `kind` is a Kind, or a resource where the registry names one. */
export function invalid(group: string, kind: string, name: string, errors: FieldError[]): Status {
  const each = errors.map((e) => `${e.field}: ${e.message}`);
  const aggregate = each.length === 1 ? each[0] : `[${each.join(", ")}]`;
  return failure(422, "Invalid", `${group ? `${kind}.${group}` : kind} "${name}" is invalid: ${aggregate}`, {
    ...(name ? { name } : {}),
    ...(group ? { group } : {}),
    kind,
    causes: errors.map((e) => ({ reason: e.reason, message: e.message, field: e.field })),
  });
}

/** 422 for ListOptions that fail validation (apimachinery metainternalversion/validation). */
export const invalidListOptions = (errors: FieldError[]) => invalid("meta.k8s.io", "ListOptions", "", errors);

/** 409 for a create whose name is taken (apierrors.NewAlreadyExists). */
export const alreadyExists = (resource: string, group: string, name: string) =>
  failure(409, "AlreadyExists", `${qualified(resource, group)} "${name}" already exists`, {
    name,
    ...(group ? { group } : {}),
    kind: resource,
  });

/** The registry's OptimisticLockErrorMsg: an update from a stale resourceVersion. */
const OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again";

/** 409 Conflict (apierrors.NewConflict): by default, an update from a stale resourceVersion. */
export const conflict = (resource: string, group: string, name: string, why = OPTIMISTIC_LOCK) =>
  failure(409, "Conflict", `Operation cannot be fulfilled on ${qualified(resource, group)} "${name}": ${why}`, {
    name,
    ...(group ? { group } : {}),
    kind: resource,
  });

/** 413 for a body over the API server's limit (3 MiB, apiserver's MaxRequestBodyBytes). */
export const requestTooLarge = () =>
  failure(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728");
