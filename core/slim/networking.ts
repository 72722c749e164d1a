/**
 * Slim copies of what routes traffic to Services: Ingress (networking.k8s.io/v1) and the
 * Gateway API's Gateway and HTTPRoute (gateway.networking.k8s.io/v1). What telemetry needs
 * to name a request's route: hosts, paths, listeners, backends and the addresses traffic
 * arrives on. Left out: TLS certificate references, filters, timeouts, allowedRoutes, and
 * status conditions, which controllers rewrite on every reconcile.
 */
import { objectList, put, record, scalarList, scalars, stringList, type Json } from "./read.ts";

const LOAD_BALANCER_INGRESS_FIELDS = ["ip", "hostname"] as const;

/** TLS entries without hosts are left out: a rule's path through the list adds nothing to it. */
export const INGRESS_PARTIAL_LISTS: ReadonlySet<string> = new Set(["spec.tls"]);
/** Rules without matches or backends are left out: a rule's path through the list adds nothing to it. */
export const HTTP_ROUTE_PARTIAL_LISTS: ReadonlySet<string> = new Set(["spec.rules"]);
const SERVICE_BACKEND_FIELDS = ["name"] as const;
const SERVICE_PORT_FIELDS = ["name", "number"] as const;
const RESOURCE_BACKEND_FIELDS = ["apiGroup", "kind", "name"] as const;
const INGRESS_PATH_FIELDS = ["path", "pathType"] as const;

export function slimIngress(raw: Json, into: Json): void {
  const rawSpec = record(raw.spec);
  const spec = scalars(rawSpec, ["ingressClassName"]);
  if (rawSpec !== undefined) {
    put(spec, "defaultBackend", ingressBackend(rawSpec.defaultBackend));
    put(
      spec,
      "tls",
      objectList(rawSpec.tls, (item) => {
        const tls: Json = {};
        put(tls, "hosts", stringList(item.hosts));
        return tls;
      }),
    );
    put(spec, "rules", objectList(rawSpec.rules, ingressRule));
  }
  put(into, "spec", spec);

  const ingress = scalarList(record(record(raw.status)?.loadBalancer)?.ingress, LOAD_BALANCER_INGRESS_FIELDS);
  if (ingress !== undefined) into.status = { loadBalancer: { ingress } };
}

function ingressRule(item: Json): Json {
  const rule = scalars(item, ["host"]);
  const paths = objectList(record(item.http)?.paths, (rawPath) => {
    const path = scalars(rawPath, INGRESS_PATH_FIELDS);
    put(path, "backend", ingressBackend(rawPath.backend));
    return path;
  });
  if (paths !== undefined) rule.http = { paths };
  return rule;
}

/** A Service and its port (by name or number), or a resource such as a storage bucket. */
function ingressBackend(value: unknown): Json | undefined {
  const from = record(value);
  if (from === undefined) return undefined;
  const backend: Json = {};
  const rawService = record(from.service);
  if (rawService !== undefined) {
    const service = scalars(rawService, SERVICE_BACKEND_FIELDS);
    put(service, "port", scalars(rawService.port, SERVICE_PORT_FIELDS));
    put(backend, "service", service);
  }
  put(backend, "resource", scalars(from.resource, RESOURCE_BACKEND_FIELDS));
  return backend;
}

const LISTENER_FIELDS = ["name", "hostname", "port", "protocol"] as const;
const ADDRESS_FIELDS = ["type", "value"] as const;

/** Its listeners say which hosts and ports it serves; status.addresses where traffic arrives. */
export function slimGateway(raw: Json, into: Json): void {
  const rawSpec = record(raw.spec);
  const spec = scalars(rawSpec, ["gatewayClassName"]);
  put(spec, "listeners", scalarList(rawSpec?.listeners, LISTENER_FIELDS));
  put(into, "spec", spec);
  const addresses = scalarList(record(raw.status)?.addresses, ADDRESS_FIELDS);
  if (addresses !== undefined) into.status = { addresses };
}

const PARENT_REF_FIELDS = ["group", "kind", "namespace", "name", "sectionName", "port"] as const;
const BACKEND_REF_FIELDS = ["group", "kind", "namespace", "name", "port", "weight"] as const;
const PATH_MATCH_FIELDS = ["type", "value"] as const;
const VALUE_MATCH_FIELDS = ["type", "name", "value"] as const;

/** The Gateways it attaches to, its hostnames, and per rule what it matches and where it sends it. */
export function slimHTTPRoute(raw: Json, into: Json): void {
  const rawSpec = record(raw.spec);
  const spec: Json = {};
  if (rawSpec !== undefined) {
    put(spec, "parentRefs", scalarList(rawSpec.parentRefs, PARENT_REF_FIELDS));
    put(spec, "hostnames", stringList(rawSpec.hostnames));
    put(
      spec,
      "rules",
      objectList(rawSpec.rules, (item) => {
        const rule: Json = {};
        put(rule, "matches", objectList(item.matches, routeMatch));
        put(rule, "backendRefs", scalarList(item.backendRefs, BACKEND_REF_FIELDS));
        return rule;
      }),
    );
  }
  put(into, "spec", spec);
}

function routeMatch(item: Json): Json {
  const match: Json = {};
  put(match, "path", scalars(item.path, PATH_MATCH_FIELDS));
  put(match, "headers", scalarList(item.headers, VALUE_MATCH_FIELDS));
  put(match, "queryParams", scalarList(item.queryParams, VALUE_MATCH_FIELDS));
  scalars(item, ["method"], match);
  return match;
}
