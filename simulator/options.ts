/**
 * Query parameters of a LIST or WATCH, parsed and validated like kube-apiserver does
 * (ListOptions conversion, then apimachinery's metainternalversion/validation).
 */
import { badRequest, invalidListOptions, type FieldError, type Status } from "./status.ts";

export interface ListOptions {
  watch: boolean;
  allowWatchBookmarks: boolean;
  /** Undefined when the parameter is absent: the distinction matters to validation. */
  sendInitialEvents: boolean | undefined;
  resourceVersion: string;
  resourceVersionMatch: string;
  limit: number;
  continueToken: string;
  labelSelector: string;
  fieldSelector: string;
  timeoutSeconds: number | undefined;
}

/** Go's strconv.ParseBool, which the query-parameter conversion uses. */
function parseBool(name: string, value: string | null): boolean | undefined | Status {
  if (value === null) return undefined;
  if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(value)) return false;
  return badRequest(`${name}: strconv.ParseBool: parsing "${value}": invalid syntax`);
}

function parseInt64(name: string, value: string | null): number | undefined | Status {
  if (value === null || value === "") return undefined;
  if (!/^-?\d+$/.test(value)) return badRequest(`${name}: strconv.ParseInt: parsing "${value}": invalid syntax`);
  return Number(value);
}

const isStatus = (value: unknown): value is Status =>
  typeof value === "object" && value !== null && (value as Status).kind === "Status";

export function parseListOptions(params: URLSearchParams): ListOptions | Status {
  const watch = parseBool("watch", params.get("watch"));
  const bookmarks = parseBool("allowWatchBookmarks", params.get("allowWatchBookmarks"));
  const initialEvents = parseBool("sendInitialEvents", params.get("sendInitialEvents"));
  const limit = parseInt64("limit", params.get("limit"));
  const timeout = parseInt64("timeoutSeconds", params.get("timeoutSeconds"));
  for (const value of [watch, bookmarks, initialEvents, limit, timeout]) if (isStatus(value)) return value;
  return {
    watch: watch === true,
    allowWatchBookmarks: bookmarks === true,
    sendInitialEvents: initialEvents as boolean | undefined,
    resourceVersion: params.get("resourceVersion") ?? "",
    resourceVersionMatch: params.get("resourceVersionMatch") ?? "",
    limit: Math.max(0, (limit as number | undefined) ?? 0),
    continueToken: params.get("continue") ?? "",
    labelSelector: params.get("labelSelector") ?? "",
    fieldSelector: params.get("fieldSelector") ?? "",
    timeoutSeconds: timeout as number | undefined,
  };
}

const forbidden = (field: string, detail: string): FieldError => ({
  field,
  reason: "FieldValueForbidden",
  message: `Forbidden: ${detail}`,
});

const notSupported = (field: string, value: string, supported: string[]): FieldError => ({
  field,
  reason: "FieldValueNotSupported",
  message: `Unsupported value: "${value}": supported values: ${supported.map((s) => `"${s}"`).join(", ")}`,
});

/**
 * ValidateListOptions of apimachinery (v1.27+). `watchListEnabled` false behaves like a
 * v1.27–v1.31 server with the WatchList feature gate off (the default before 1.32).
 * Note what older servers do with a streaming-list request: v1.19–v1.26 do not know
 * sendInitialEvents (ignored as an unknown parameter) but reject resourceVersionMatch
 * on a watch, also with a 422 ("resourceVersionMatch is forbidden for watch"); only
 * servers older than v1.19 ignore both and serve a plain watch. Either way a modern
 * server that cannot stream lists answers 422 Invalid, which clients (client-go's
 * reflector) take as "fall back to LIST"; so that is what `streamingList: false` does.
 */
export function validateListOptions(options: ListOptions, watchListEnabled: boolean): Status | undefined {
  const errors: FieldError[] = [];
  const match = options.resourceVersionMatch;
  if (options.watch) {
    if (options.sendInitialEvents !== undefined) {
      if (match !== "NotOlderThan")
        errors.push(
          forbidden("resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"),
        );
      if (!watchListEnabled)
        errors.push(
          forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
          ),
        );
    }
    if (match) {
      if (options.sendInitialEvents === undefined)
        errors.push(
          forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
          ),
        );
      if (match !== "NotOlderThan") errors.push(notSupported("resourceVersionMatch", match, ["NotOlderThan"]));
      if (options.continueToken)
        errors.push(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"));
    }
  } else {
    if (match) {
      if (!options.resourceVersion)
        errors.push(
          forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided"),
        );
      if (options.continueToken)
        errors.push(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"));
      if (match !== "Exact" && match !== "NotOlderThan")
        errors.push(notSupported("resourceVersionMatch", match, ["Exact", "NotOlderThan", ""]));
      if (match === "Exact" && options.resourceVersion === "0")
        errors.push(
          forbidden("resourceVersionMatch", 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'),
        );
    }
    if (options.sendInitialEvents !== undefined)
      errors.push(forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"));
  }
  return errors.length > 0 ? invalidListOptions(errors) : undefined;
}

/** A resourceVersion parameter as a number; undefined when absent. */
export function parseResourceVersion(value: string): number | Status | undefined {
  if (value === "") return undefined;
  if (!/^\d+$/.test(value)) return badRequest(`invalid resource version "${value}"`);
  return Number(value);
}
