/**
 * What the kubernetes source tells the host until every resource has synced (`ctx.waiting`, shown by /readyz): the
 * resources waited for (not served yet, in the config's order), the last error of each failing one (resources
 * failing alike named together), and the others not synced yet, since a list or watch that hangs says nothing else.
 * Once every resource has synced, `ctx.synced()`.
 */
import type { SourceContext } from "../../../sdk/contract.ts";

export class SourceReadiness {
  private readonly reasons: Map<string, string | undefined>;
  private readonly errors = new Map<string, string>();
  private readonly unsynced: Set<string>;

  constructor(
    private readonly resources: string[],
    private readonly ctx: Pick<SourceContext, "logger" | "synced" | "waiting">,
  ) {
    this.reasons = new Map(resources.map((name) => [name, undefined]));
    this.unsynced = new Set(resources);
  }

  /** Why a resource is waited for (not served yet); undefined once it is served. */
  waiting(resource: string, reason: string | undefined): void {
    this.reasons.set(resource, reason);
    this.report();
  }

  /** The last error of a resource not synced yet; undefined once it works. */
  failing(resource: string, error: string | undefined): void {
    if (error === undefined) this.errors.delete(resource);
    else this.errors.set(resource, error);
    this.report();
  }

  /** A resource delivered its initial state; the source is synced with the last one. Safe twice. */
  synced(resource: string): void {
    if (!this.unsynced.delete(resource)) return;
    this.report();
    if (this.unsynced.size > 0) return;
    this.ctx.logger.info("kubernetes source synced", { resources: this.resources.length });
    this.ctx.synced();
  }

  report(): void {
    const waited = [...this.reasons.values()].filter((given) => given !== undefined);
    const failing = new Map<string, string[]>();
    for (const [name, error] of this.errors) failing.set(error, [...(failing.get(error) ?? []), name]);
    const quiet = [...this.unsynced].filter((name) => this.reasons.get(name) === undefined && !this.errors.has(name));
    const parts = [
      ...(waited.length > 0 ? [`waiting for ${waited.join(", ")}`] : []),
      ...[...failing].map(([error, names]) => `${names.join(", ")}: ${error}`),
      ...(quiet.length > 0 ? [`${quiet.join(", ")}: not synced yet`] : []),
    ];
    this.ctx.waiting(parts.length > 0 ? parts.join("; ") : undefined);
  }
}

/**
 * Bun's fetch names the whole URL in some of its errors (ERR_TLS_CERT_ALTNAME_INVALID fetching "https://…/api/v1/pods?
 * watch=1&timeoutSeconds=287…". For more information, pass verbose: true…): each resource's path and query differ,
 * so resources failing alike would each get a part of their own in /readyz. The server's origin is what tells an
 * operator something; the hint is for whoever calls fetch.
 */
export function withoutUrl(message: string): string {
  return message.replace(
    / fetching "([^"]*)"\.?(?: For more information, pass `verbose: true` in the second argument to fetch\(\))?/,
    (_all, url: string) => ` fetching ${URL.canParse(url) ? new URL(url).origin : url}`,
  );
}
