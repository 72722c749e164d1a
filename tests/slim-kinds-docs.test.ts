/**
 * README's "What each kind keeps" table against what slim() keeps: every path a slim copy holds is one the table
 * lists for its kind (or for every kind), and every path the table lists is one a slim copy holds, on objects with
 * every field filled (the canonical fixtures), real ones, and made ones of the kinds without a fixture.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { slim } from "../core/slim.ts";
import type { KubeObject } from "../sdk/model.ts";
import { CANONICAL_FILES, fixture, realPods } from "./fixtures/k8s/load.ts";
import { REAL_NODE } from "./slim-fixtures.ts";
import { cronJob, gateway, hpa, httpRoute, ingress, pvc } from "./slim-kinds-objects.ts";

const EVERY_KIND = "every kind";
const EVERY_ANNOTATION = { annotationAllowList: ["*"] };

/** `a.{b,c}[].d` as `a.b[].d` and `a.c[].d`: the table's shorthand, expanded. */
function expand(path: string): string[] {
  const open = path.indexOf("{");
  if (open < 0) return [path];
  const close = path.indexOf("}", open);
  const rest = expand(path.slice(close + 1));
  return path
    .slice(open + 1, close)
    .split(",")
    .flatMap((choice) => rest.map((tail) => `${path.slice(0, open)}${choice}${tail}`));
}

/** The table's paths by kind, from between its markers in README.md. */
async function documentedPaths(): Promise<Map<string, string[]>> {
  const readme = await Bun.file(join(import.meta.dir, "..", "README.md")).text();
  const table = /<!-- slim-kinds-table -->\n([\s\S]*?)<!-- \/slim-kinds-table -->/.exec(readme)?.[1] ?? "";
  const byKind = new Map<string, string[]>();
  for (const row of table.split("\n").slice(2)) {
    const [, kinds, paths] = row.split("|").map((cell) => cell.trim());
    if (kinds === undefined || paths === undefined) continue;
    const expanded = [...paths.matchAll(/`([^`]+)`/g)].flatMap((match) => expand(match[1]!));
    for (const kind of kinds.split(", ")) byKind.set(kind, expanded);
  }
  return byKind;
}

/** Every leaf of a slim copy as a path: list items as `[]`, an empty map (a container's `running: {}`) a leaf. */
function leafPaths(value: unknown, path = "", into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const item of value) leafPaths(item, `${path}[]`, into);
  else if (typeof value === "object" && value !== null && Object.keys(value).length > 0)
    for (const [key, item] of Object.entries(value)) leafPaths(item, path === "" ? key : `${path}.${key}`, into);
  else into.add(path);
  return into;
}

/** Whether `path` is `documented` or lies under it (a map or list kept whole). */
function under(path: string, documented: string): boolean {
  return path === documented || path.startsWith(`${documented}.`) || path.startsWith(`${documented}[]`);
}

/** Objects of every built-in kind with their fields filled, and of kinds the table does not list. */
async function objects(): Promise<KubeObject[]> {
  const autoscalingV1 = hpa();
  autoscalingV1.apiVersion = "autoscaling/v1";
  autoscalingV1.spec = { ...(autoscalingV1.spec as object), targetCPUUtilizationPercentage: 70 };
  // An HTTPRoute's fields its made object leaves out: a parent's port, a backend in another namespace, query params.
  const route = httpRoute();
  const routeSpec = route.spec as { parentRefs: object[]; rules: { matches: object[]; backendRefs: object[] }[] };
  routeSpec.parentRefs.push({ name: "internal", port: 8443 });
  const rule = routeSpec.rules[0]!;
  rule.matches.push({ queryParams: [{ type: "Exact", name: "v", value: "2" }] });
  rule.backendRefs.push({ kind: "Service", namespace: "legacy", name: "api", port: 80 });
  return [
    ...(await Promise.all(CANONICAL_FILES.map((file) => fixture(file)))),
    ...(await realPods()).map((pod) => ({ ...pod, kind: "Pod" })),
    await fixture(REAL_NODE),
    ...[ingress(), hpa(), autoscalingV1, pvc(), gateway(), route, cronJob()],
  ];
}

describe("README's table of what each kind keeps", () => {
  test("lists every path a slim copy holds, and holds every path it lists", async () => {
    const documented = await documentedPaths();
    const everyKind = documented.get(EVERY_KIND) ?? [];
    expect(everyKind.length).toBeGreaterThan(0);
    const heldByKind = new Map<string, Set<string>>();
    for (const raw of await objects()) {
      const held = heldByKind.get(raw.kind!) ?? new Set<string>();
      heldByKind.set(raw.kind!, held);
      for (const path of leafPaths(slim(raw.kind!, raw, EVERY_ANNOTATION))) held.add(path);
    }
    const unlisted = [...heldByKind].flatMap(([kind, held]) => {
      const listed = [...everyKind, ...(documented.get(kind) ?? [])];
      return [...held].filter((path) => !listed.some((entry) => under(path, entry))).map((path) => `${kind} ${path}`);
    });
    expect(unlisted).toEqual([]);
    const allHeld = [...heldByKind.values()].flatMap((held) => [...held]);
    const neverHeld = [...documented].flatMap(([kind, listed]) => {
      const held = kind === EVERY_KIND ? allHeld : [...(heldByKind.get(kind) ?? [])];
      return listed.filter((entry) => !held.some((path) => under(path, entry))).map((entry) => `${kind} ${entry}`);
    });
    expect(neverHeld).toEqual([]);
  });
});
