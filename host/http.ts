/**
 * The one HTTP listener (Hono on Bun.serve). The host mounts health, readiness and
 * metrics; plugins mount their routes on `app` before `serve`. CORS, a refusal of GETs
 * with a body, then bearer-token auth (http-bearer.ts) guard every path, plugin routes included; only
 * /healthz and /readyz stay open for probes.
 */
import { Hono } from "hono";
import { cors } from "hono/cors";
import { TrieRouter } from "hono/router/trie-router";
import { X509Certificate } from "node:crypto";
import type { HttpConfig } from "./http-config.ts";
import type { Logger } from "../sdk/telemetry.ts";
import type { Metrics } from "../sdk/telemetry.ts";
import { TIMED_OUT, until } from "../protocol/retry.ts";
import { readCredentialFileSync } from "../sdk/credential-file.ts";
import { bearerAuth } from "./http-bearer.ts";
import { refuseForeignHosts } from "./http-rebinding.ts";
import { malformedHost, withWholeUrl } from "./http-request-url.ts";
import {
  isLoopback,
  listenerWarnings,
  NO_TOKENS,
  NO_TOKENS_HINT,
  openToOthers,
  resolveAddress,
} from "./http-address.ts";

export interface Readiness {
  ready: boolean;
  /** Why it is not ready, for people reading /readyz. */
  waiting: string[];
}

export interface HttpServerOptions {
  config: HttpConfig;
  logger: Logger;
  metrics: Metrics;
  readiness(): Promise<Readiness>;
}

export interface HttpServer {
  app: Hono;
  /**
   * Binds the listener, so that a port that is taken fails the start before anything else runs. Until `serve`, a
   * request is answered if a route for it is mounted (the host's, a plugin's mounted by its start), else it waits
   * for `serve`: plugins mount their routes as they start, and a route not mounted yet is no 404.
   */
  listen(): Promise<void>;
  /** Routes every request, those that waited included. */
  serve(): void;
  /**
   * Refuses new connections and closes idle ones; the requests in flight finish until `drainUntil` (epoch ms), and
   * what is still open then is closed. Without `drainUntil`, everything is closed at once.
   */
  stop(drainUntil?: number): Promise<void>;
  /**
   * From now on (a shutdown has begun) every response says `Connection: close`: a kept-alive client would send its
   * next request on a connection the stop closes, and get ECONNRESET for it; told, it opens a new one.
   */
  endKeepAlive(): void;
  /**
   * Aborted as a stop closes what is still open (its drain's time run out): a handler still to answer answers now (a
   * 503 with Retry-After), which is written before the close, where its client would get the connection closed with
   * nothing (ECONNRESET, curl's `Empty reply from server`).
   */
  drainOver: AbortSignal;
  /** The listening URL (after start), e.g. http://127.0.0.1:8080. */
  url(): string;
}

/** How long a stop's close waits for the handlers drainOver told to answer: they do at once; one that does not, cut. */
const ANSWER_AT_CLOSE_MS = 200;

/** Probes carry no credentials; everything else, whoever mounted it, needs a token when tokens are configured. */
const OPEN_PATHS = new Set(["/healthz", "/readyz"]);

type BunServer = ReturnType<typeof Bun.serve>;

/**
 * `kubemeta_tls_certificate_expiry_timestamp_seconds`: when the certificate served (a chain's first) ends. It is read
 * at start only, so an alert on it (`… - time() < 14 * 86400`) is what tells a renewal, or a restart after one, is due.
 */
function certificateExpiry(metrics: Metrics, pem: string): void {
  const end = Date.parse(new X509Certificate(pem).validTo) / 1000;
  metrics
    .gauge(
      "kubemeta_tls_certificate_expiry_timestamp_seconds",
      "When the HTTPS listener's certificate (read at start) expires, in Unix seconds.",
    )
    .set(end);
}

/** Whether `app` has a route for `request` (a handler, not a middleware of every path) yet. */
function routeMounted(app: Hono, request: Request): boolean {
  // Hono answers a HEAD with its GET route.
  const method = request.method === "HEAD" ? "GET" : request.method;
  const path = new URL(request.url).pathname;
  return app.router.match(method, path)[0].some(([[, route]]) => route.method === method);
}

export function createHttpServer(options: HttpServerOptions): HttpServer {
  const { config, logger, metrics } = options;
  // A router that takes routes after it has routed requests (Hono's default builds itself at the first and refuses
  // more): probes, /metrics and the store's reads are answered while plugins still start and mount theirs.
  const app = new Hono({ router: new TrieRouter() });
  let server: ReturnType<typeof Bun.serve> | undefined;
  const routed = Promise.withResolvers<void>();
  let routing = false;
  let loopbackOnly = false;
  /** The GET's own response to each HEAD, which Bun answers a HEAD with (see the first middleware). */
  const headAnswers = new WeakMap<Request, Response>();
  const drainOver = new AbortController();
  let keepAlive = true;
  /** Requests whose handler has yet to return its response. */
  const unanswered = new Set<Promise<Response>>();

  app.onError((error, c) => {
    logger.error("http handler failed", { path: c.req.path, error });
    return c.json({ error: "internal error" }, 500);
  });
  app.notFound((c) => {
    const { path } = c.req;
    // A HEAD is answered with the GET's headers (its Content-Length): its body names GET too.
    const method = c.req.method === "HEAD" ? "GET" : c.req.method;
    // A route that is there for other methods: 405 and what it takes, rather than "no such route".
    const allowed = new Set(
      [...new Set(app.routes.map((r) => r.method))].filter(
        (other) => other !== "ALL" && app.router.match(other, path)[0].some(([[, route]]) => route.method === other),
      ),
    );
    if (allowed.size === 0) return c.json({ error: `no route for ${method} ${path}` }, 404);
    if (allowed.has("GET")) allowed.add("HEAD");
    const allow = [...allowed].join(", ");
    c.header("Allow", allow);
    return c.json({ error: `${method} is not allowed on ${path}: ${allow}` }, 405);
  });
  // Hono answers a HEAD with a copy of the GET handler's response without its body: Bun then sends
  // `Content-Length: 0`, and a streamed body (/v1/objects' snapshot read, a plugin's stream) is never cancelled,
  // holding its store read and its turn for good. Bun is handed the GET's own response instead: it answers a HEAD as
  // HTTP says (the length of a body it knows, none for a stream, `Transfer-Encoding: chunked` as the GET's), and
  // cancels a stream unread. Bun adds a Date to a GET's answer, not to a HEAD's: it is said here, as the GET's; and
  // the type a Response gives itself from its body (a string's, a form's, a Blob's), which Bun sends a GET alone, is
  // set as the Response's own header (a plugin's route says none).
  app.use("*", async (c, next) => {
    await next();
    if (c.req.method !== "HEAD") return;
    if (!c.res.headers.has("date")) c.res.headers.set("date", new Date().toUTCString());
    const type = c.res.headers.get("content-type");
    if (type !== null) c.res.headers.set("content-type", type);
    headAnswers.set(c.req.raw, c.res);
  });
  // The cluster's metadata is not for a cache to keep: a token sent as `access_token` leaves no Authorization header,
  // which is all that stops a shared cache from storing an answer (RFC 9111 §3.5), and a browser's own cache keeps
  // either. A route that says its own (the SSE stream's no-cache) is left as it is. A JSON body that echoes a path
  // or a value is never to be sniffed into HTML. Once a shutdown has begun, the client is told the connection ends
  // with this answer (endKeepAlive).
  app.use("*", async (c, next) => {
    await next();
    const { headers } = c.res;
    if (!headers.has("cache-control")) headers.set("cache-control", "no-store");
    headers.set("x-content-type-options", "nosniff");
    if (!keepAlive) headers.set("connection", "close");
  });
  if (config.corsOrigins.length > 0) {
    const origin = config.corsOrigins.includes("*") ? "*" : config.corsOrigins;
    // Last-Event-ID is what a reconnecting EventSource sends; Authorization is for fetch-based clients.
    app.use(
      "*",
      cors({
        origin,
        allowMethods: ["GET", "HEAD", "OPTIONS"],
        allowHeaders: ["Authorization", "Last-Event-ID"],
        // A fetch-based client in a browser (the client library) waits as long as a refusal says.
        exposeHeaders: ["Retry-After"],
        maxAge: 600,
      }),
    );
  }
  app.use("*", async (c, next) => {
    const host = malformedHost(c.req.raw);
    if (host === undefined) return next();
    return c.json({ error: `malformed Host header: ${JSON.stringify(host)} is no host and port (RFC 9112 §3.2)` }, 400);
  });
  // Nothing here reads a GET's body: one that comes with a body is refused before anything reads it.
  app.use("*", async (c, next) => {
    const { method, raw } = c.req;
    const sendsBody = raw.headers.has("transfer-encoding") || Number(raw.headers.get("content-length") ?? 0) !== 0;
    if ((method === "GET" || method === "HEAD") && sendsBody) return c.json({ error: "a GET takes no body" }, 400);
    return next();
  });
  if (config.tokens.length > 0) {
    const guard = bearerAuth(config.tokens);
    app.use("*", (c, next) => (OPEN_PATHS.has(c.req.path) ? next() : guard(c, next)));
  } else {
    // Known once `listen` has resolved http.address; a listener others reach without tokens is warned of instead.
    const guard = refuseForeignHosts(config.address);
    app.use("*", (c, next) => (loopbackOnly ? guard(c, next) : next()));
  }

  // Its type said, not left to the Response: Bun answers a HEAD without the type a Response gives itself.
  app.get("/healthz", (c) => c.text("ok\n", 200, { "content-type": "text/plain; charset=utf-8" }));
  app.get("/readyz", async (c) => {
    const readiness = await options.readiness();
    return c.json(readiness, readiness.ready ? 200 : 503);
  });
  app.get("/metrics", (c) =>
    c.text(metrics.render(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }),
  );

  const route = async (request: Request, bunServer: BunServer): Promise<Response> => {
    const [whole, env] = withWholeUrl(request, bunServer);
    // Waiting for the plugins to start (each start at most its deadline), it sends nothing through no fault of its
    // client. A route mounted already need not wait: a probe, a plugin's whose start is over, while another hangs.
    if (!routing && !routeMounted(app, whole)) {
      bunServer.timeout(request, 0);
      await routed.promise;
      bunServer.timeout(request, config.idleTimeout);
    }
    const response = await app.fetch(whole, env);
    return headAnswers.get(whole) ?? response;
  };
  const answer = (request: Request, bunServer: BunServer): Promise<Response> => {
    const answering = route(request, bunServer);
    const answered = () => void unanswered.delete(answering);
    unanswered.add(answering);
    answering.then(answered, answered);
    return answering;
  };

  return {
    app,
    drainOver: drainOver.signal,
    async listen() {
      if (server) return;
      const addresses = await resolveAddress(config.address);
      const tls = config.tls && {
        cert: readCredentialFileSync("http.tls.cert", config.tls.cert).toString("utf8"),
        key: readCredentialFileSync("http.tls.key", config.tls.key).toString("utf8"),
      };
      if (tls) certificateExpiry(metrics, tls.cert);
      server = Bun.serve({
        hostname: config.address,
        port: config.port,
        idleTimeout: config.idleTimeout,
        tls,
        fetch: answer,
      });
      logger.info("http listening", { url: server.url.href, tls: Boolean(config.tls), auth: config.tokens.length > 0 });
      loopbackOnly = addresses.every(isLoopback);
      if (openToOthers(config, addresses)) logger.warn(NO_TOKENS, { address: config.address, hint: NO_TOKENS_HINT });
      for (const warning of listenerWarnings(config, addresses)) logger.warn(warning);
    },
    serve() {
      routing = true;
      routed.resolve();
    },
    endKeepAlive() {
      keepAlive = false;
    },
    async stop(drainUntil) {
      keepAlive = false;
      const running = server;
      server = undefined;
      if (!running) return;
      if (drainUntil !== undefined) {
        if ((await until(running.stop(false), drainUntil)) !== TIMED_OUT) return;
        drainOver.abort();
        await until(Promise.allSettled([...unanswered]), Date.now() + ANSWER_AT_CLOSE_MS);
        // Bun writes an answer once its handler's promise settles, after the reactions above: a turn of the loop.
        await new Promise((resolve) => setImmediate(resolve));
        if (running.pendingRequests > 0)
          logger.warn("http: requests still in flight when the shutdown's time ran out are cut", {
            requests: running.pendingRequests,
          });
      }
      drainOver.abort();
      await running.stop(true);
    },
    url() {
      if (!server) throw new Error("http server is not started");
      return server.url.href.replace(/\/$/, "");
    },
  };
}
