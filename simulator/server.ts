/**
 * The HTTP(S) front of the test API server: authentication, routing, request
 * accounting, fault injection, and the GET/LIST handlers (watches: watches.ts; Lease writes: writes.ts).
 *
 * Built on node:https rather than Bun.serve, measured under Bun 1.4.4:
 * - Bun.serve sends no status line or headers until the first body byte, so a watch
 *   with nothing to say leaves the client waiting for its response (a real API server
 *   flushes headers right away). node:http's `res.flushHeaders()` sends them at once.
 * - Client-certificate auth needs to know whether the peer's certificate verified;
 *   node:https gives `socket.authorized` (with `requestCert`, `rejectUnauthorized:
 *   false`, so token clients without a certificate still get through). Under Bun,
 *   `req.socket.getPeerCertificate` does not exist, so the user name is not read.
 * Both stream a 150,000-pod list (600 MB) over TLS at the same ~220 MB/s here.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { TLSSocket } from "node:tls";
import type { TestPki } from "./certs.ts";
import { DISCOVERY_REQUEST, Faults, type Verb } from "./faults.ts";
import { acceptsGzip, sendJson, sendStatus } from "./http.ts";
import { ListSnapshots, serveList } from "./list.ts";
import { parseListOptions, validateListOptions } from "./options.ts";
import { ServedResources, type CustomResourceSpec } from "./resources.ts";
import { route } from "./routes.ts";
import { parseFieldSelector, parseLabelSelector, SelectorError } from "./selectors.ts";
import { badRequest, methodNotAllowed, objectNotFound, pathNotFound, unauthorized } from "./status.ts";
import { ObjectStore } from "./store.ts";
import type { WatchFilter } from "./watch.ts";
import { sendErrorEvent, Watches } from "./watches.ts";
import { writeVerb, Writes } from "./writes.ts";

export interface ServerConfig {
  pki: TestPki | undefined;
  tokens: Set<string>;
  clientCertAuth: boolean;
  anonymous: boolean;
  streamingList: boolean;
  bookmarkIntervalMs: number;
  watchHistory: number;
  continueTtlMs: number;
  maxPageSize: number | undefined;
  /** Gzip large LIST responses for clients that accept it, as kube-apiserver does by default (http.ts). */
  compression: boolean;
}

export class ApiServerCore {
  readonly resources = new ServedResources();
  readonly store: ObjectStore;
  readonly faults = new Faults();
  readonly counts = new Map<string, number>();
  /** LIST responses sent gzipped. */
  gzippedLists = 0;
  private readonly writes: Writes;
  private readonly snapshots: ListSnapshots;
  private readonly watches: Watches;
  private readonly server: Server;
  private address = "";

  constructor(private readonly config: ServerConfig) {
    this.store = new ObjectStore(config.watchHistory, this.resources);
    this.writes = new Writes(this.store);
    this.snapshots = new ListSnapshots(config.continueTtlMs);
    this.watches = new Watches(this.store, config.bookmarkIntervalMs);
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    const { pki } = config;
    this.server = pki
      ? createHttpsServer(
          {
            key: pki.serverKeyPem,
            cert: pki.serverCertPem,
            ca: pki.caPem,
            requestCert: config.clientCertAuth,
            rejectUnauthorized: false,
          },
          handler,
        )
      : createHttpServer(handler);
    // Go's http.Server keeps idle connections far longer than node's 5 s default; a short
    // server-side idle close races clients reusing the connection.
    this.server.keepAliveTimeout = 90_000;
  }

  async listen(port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, "127.0.0.1", () => resolve());
    });
    const { port: bound } = this.server.address() as { port: number };
    this.address = `127.0.0.1:${bound}`;
    return `${this.config.pki ? "https" : "http"}://${this.address}`;
  }

  async close(): Promise<void> {
    this.dropWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  openWatches(): number {
    return this.watches.count();
  }

  dropWatches(): void {
    this.watches.dropAll();
  }

  stallWatches(stalled: boolean): void {
    this.watches.stall(stalled);
  }

  /** Serves a custom resource from now on, like installing its CRD: watches from before now get 410 (store.ts). */
  installResource(spec: CustomResourceSpec): void {
    this.store.serveFrom(this.resources.install(spec));
  }

  /** Deletes every object of the resource, ends its watches, and stops serving it, like deleting its CRD. */
  uninstallResource(group: string, version: string, resource: string): void {
    const type = this.resources.uninstall(group, version, resource);
    this.store.drop(type);
    this.watches.endAll(type);
  }

  expireContinueTokens(): void {
    this.snapshots.expireAll();
  }

  private count(verb: string, resource: string): void {
    const key = `${verb} ${resource}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  private authenticated(req: IncomingMessage): boolean {
    if (this.config.anonymous) return true;
    const header = req.headers.authorization ?? "";
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (bearer && this.config.tokens.has(bearer[1]!)) return true;
    return this.config.clientCertAuth && (req.socket as TLSSocket).authorized === true;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    try {
      this.dispatch(req, res);
    } catch (error) {
      if (!res.headersSent) sendStatus(res, badRequest(error instanceof Error ? error.message : String(error)));
      else res.destroy();
    }
  }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://localhost");
    const target = route(url.pathname, this.address, this.resources);
    const watching = ["1", "t", "T", "TRUE", "true", "True"].includes(url.searchParams.get("watch") ?? "");
    const verb: Verb =
      target.kind === "object" ? "get" : target.kind === "collection" ? (watching ? "watch" : "list") : "discovery";
    const write = target.kind === "object" || target.kind === "collection" ? writeVerb(req.method, target) : undefined;
    // A streaming list (KEP-3157) costs the server a full list: counted apart from plain watches.
    const streamingList = watching && ["1", "true"].includes(url.searchParams.get("sendInitialEvents") ?? "");
    if (target.kind === "collection" || target.kind === "object")
      this.count(write ?? (streamingList ? "watchlist" : verb), target.type.resource);
    else if (target.kind === "discovery") this.count("discovery", url.pathname);

    if (!this.authenticated(req)) {
      sendStatus(res, unauthorized());
      return;
    }
    if (target.kind === "notFound") {
      sendStatus(res, pathNotFound());
      return;
    }
    const one = target.kind === "object" && req.method === "GET";
    if ((write || one) && (target.kind === "object" || target.kind === "collection")) {
      // A Lease's read or write refused as a loaded or misconfigured API server refuses it (403, 429, 5xx).
      const request = { ...DISCOVERY_REQUEST, group: target.type.group, namespace: target.namespace };
      const failure = this.faults.take(write ?? "get", target.type.resource, request);
      if (failure) {
        sendStatus(res, failure.status);
        return;
      }
    }
    if (write && target.kind !== "discovery") {
      this.writes.serve(req, res, write, target).catch(() => res.destroy());
      return;
    }
    if (req.method !== "GET") {
      sendStatus(res, methodNotAllowed());
      return;
    }
    if (target.kind === "discovery") {
      const failure = this.faults.take(verb, url.pathname, DISCOVERY_REQUEST);
      if (failure) sendStatus(res, failure.status);
      else if (target.body) sendJson(res, 200, target.body);
      else sendStatus(res, pathNotFound());
      return;
    }
    if (target.kind === "object") {
      const entry = this.store.entry(target.type, target.namespace, target.name);
      if (entry) sendJson(res, 200, entry.json);
      else sendStatus(res, objectNotFound(target.type.resource, target.type.group, target.name));
      return;
    }
    const options = parseListOptions(url.searchParams);
    if ("kind" in options) {
      sendStatus(res, options);
      return;
    }
    const failure = this.faults.take(verb, target.type.resource, {
      continueToken: options.continueToken,
      group: target.type.group,
      namespace: target.namespace,
      watchFrom: () => ({ requested: Number(options.resourceVersion) || 0, oldest: this.store.oldestServed() }),
    });
    if (failure?.asEvent) {
      sendErrorEvent(res, failure.status);
      return;
    }
    if (failure) {
      sendStatus(res, failure.status);
      return;
    }
    const invalid = validateListOptions(options, this.config.streamingList);
    if (invalid) {
      sendStatus(res, invalid);
      return;
    }
    let filter: WatchFilter;
    try {
      filter = {
        namespace: target.namespace,
        labels: parseLabelSelector(options.labelSelector),
        fields: parseFieldSelector(options.fieldSelector, target.type),
      };
    } catch (error) {
      if (error instanceof SelectorError) {
        sendStatus(res, badRequest(error.message));
        return;
      }
      throw error;
    }
    if (options.watch) {
      this.watches.start(res, target.type, filter, options);
      return;
    }
    const limit =
      this.config.maxPageSize && options.limit > 0 ? Math.min(options.limit, this.config.maxPageSize) : options.limit;
    const gzip = this.config.compression && acceptsGzip(req.headers["accept-encoding"]);
    const served = serveList(res, this.store, this.snapshots, { type: target.type, filter, options, limit, gzip });
    if ("kind" in served) {
      sendStatus(res, served);
      return;
    }
    served.then(
      (gzipped) => {
        if (gzipped) this.gzippedLists++;
      },
      () => res.destroy(),
    );
  }
}
