/**
 * A remote store over `ws(s)://` whose requests are bounded by `store.timeout`, as over `http(s)://`.
 *
 * @libsql/client sends every request of a ws client over one WebSocket and gives none a deadline: a connection that
 * stops answering (left hanging by a failover or a NAT that lost its entry, or on a path that drops packets) holds a
 * commit on it for good, and every later request, sent over the same connection, with it. Over `http(s)://` a request
 * unanswered in time fails (connection.ts), and a request goes over a connection no other request waits on (fetch's
 * pool), a new one if none is free: one made while a connection hangs takes another. Here the same, over a client
 * per connection: a request goes over a connection nothing waits on, else a new one up to MOST_CONNECTIONS, hung
 * ones counted up to MOST_OPEN, one more tried while all hang (a transaction keeps its own until it ends); one left
 * with nothing to do is closed once idle for IDLE_MS unless no other is free, as a keep-alive pool does: requests that
 * come together again and again (a commit beside the sinks' reads) reuse the connections of the last time instead of
 * each opening one (a TLS handshake over wss://). A request unanswered within the bound fails, and its connection is
 * closed, which fails the others waiting on it at once (they would wait as long).
 */
import {
  createClient,
  type Client,
  type Config,
  type InArgs,
  type InStatement,
  LibsqlError,
  type ResultSet,
  type Transaction,
  type TransactionMode,
} from "@libsql/client";
import { TIMED_OUT, until } from "../../../protocol/retry.ts";

/** How long a free connection beyond the last one free is kept for the next requests. */
const IDLE_MS = 5_000;
/**
 * Connections open at once: the commit, the read transactions (pages.ts READ_TRANSACTIONS) and a few reads beside
 * them. Beyond, requests share the least busy, as a WebSocket carries many at once: a burst of reads (SSE clients
 * resuming behind the log's tail after a restart) opens no connection, and no handshake to the server, per read.
 */
const MOST_CONNECTIONS = 8;
/**
 * How long a connection's requests may wait with no answer on it before it no longer counts toward MOST_CONNECTIONS:
 * left hanging (a failover), it must not hold requests to a server that answers new connections until store.timeout.
 */
const SILENT_MS = 2_000;
/**
 * Connections open or opening at once, hung ones counted until closed (when their requests are given up, at
 * store.timeout), the one tried while all hang (tryAnother) included: room for MOST_CONNECTIONS answering beside as
 * many a failover left hanging. A server or a path that answers nothing (new connections hang too) gets no more:
 * unbounded, MOST_CONNECTIONS new ones each SILENT_MS, each held until store.timeout, were 240 open at once at 60 s,
 * file descriptors and conntrack entries on both sides.
 */
const MOST_OPEN = 2 * MOST_CONNECTIONS;
/**
 * How long a connection takes new requests. @libsql/client opens its WebSocket anew as a request comes once the old
 * one is a minute old, and leaves the old one to close when its requests end: a request hung on it (a failover) never
 * does, and the client's close() closes the new one only, so the old stayed open for good, uncounted. Retired before,
 * a connection is closed once nothing waits on it, the next requests going over another: as often as the client would
 * have opened a WebSocket anew.
 */
const RETIRE_MS = 50_000;

interface Connection {
  client: Client;
  /** Requests waiting for their answer: it takes no other meanwhile. */
  waiting: number;
  /** Transactions open on it: it is kept until they end. */
  transactions: number;
  /** Set when a request on it went unanswered past the bound: what every request failed by its close is told. */
  gaveUp?: Error;
  /** Set while it has nothing to do: closes it then, unless it is the last one free. */
  idle?: Timer;
  /** When it last answered, or was given a request with none waiting: what it has been silent since. */
  heardAt: number;
  /** When it was made: RETIRE_MS later it takes no new request. */
  madeAt: number;
}

export class BoundedWsClient implements Client {
  /** Open connections, oldest first. */
  private readonly connections: Connection[] = [];
  /** The connection tried while every one hangs (tryAnother), and when the last one was. */
  private tried?: Connection;
  private triedAt = -Infinity;
  closed = false;
  readonly protocol = "ws";

  constructor(
    private readonly config: Config,
    private readonly ms: number,
  ) {
    this.connect();
  }

  private connect(): Connection {
    const connection = this.made();
    this.connections.push(connection);
    return connection;
  }

  private made(): Connection {
    return { client: createClient(this.config), waiting: 0, transactions: 0, heardAt: 0, madeAt: Date.now() };
  }

  /**
   * With every connection hanging and no room for another, one more is tried each SILENT_MS, carrying no request of a
   * caller: answered, it joins the others, else it is closed. Once the server answers again, requests are answered
   * within SILENT_MS or so, not only once a hung connection is given up at store.timeout, making room for a new one.
   */
  private tryAnother(): void {
    const now = Date.now();
    if (this.tried || now - this.triedAt < SILENT_MS || this.connections.length >= MOST_OPEN) return;
    const tried = this.made();
    this.tried = tried;
    this.triedAt = now;
    const answer = tried.client.execute("SELECT 1");
    answer.catch(() => {});
    void until(answer, now + SILENT_MS)
      .then(
        (answered) => {
          if (answered === TIMED_OUT || this.closed) return tried.client.close();
          tried.heardAt = Date.now();
          this.connections.push(tried);
          this.release(tried);
        },
        () => tried.client.close(),
      )
      .finally(() => {
        this.tried = undefined;
      });
  }

  /**
   * The connection a new request goes over: one that nothing waits on, else a new one, else the least busy of those
   * that answer; connections silent for SILENT_MS with requests waiting take none and leave room for new ones, up to
   * MOST_OPEN less the one tried; past it, with none answering, the least busy of all (its requests given up at
   * store.timeout) while another is tried. Retired connections take none (unless all open are) and are closed once
   * nothing waits on them.
   */
  private free(): Connection {
    if (this.closed) throw new LibsqlError("The client is closed", "CLIENT_CLOSED");
    const now = Date.now();
    const retired = (c: Connection) => now - c.madeAt >= RETIRE_MS;
    for (const c of this.connections.filter((c) => retired(c) && c.waiting === 0 && c.transactions === 0)) this.drop(c);
    const usable = this.connections.filter((c) => !retired(c));
    const free = usable.find((c) => c.waiting === 0);
    if (free) return free;
    const answering = usable.filter((c) => now - c.heardAt < SILENT_MS);
    if (answering.length < MOST_CONNECTIONS && this.connections.length < MOST_OPEN - 1) return this.connect();
    if (answering.length === 0) this.tryAnother();
    const among = [answering, usable].find((list) => list.length > 0) ?? this.connections;
    return among.reduce((least, c) => (c.waiting < least.waiting ? c : least));
  }

  /** Closed, failing what waits on it. */
  private drop(c: Connection): void {
    const at = this.connections.indexOf(c);
    if (at >= 0) this.connections.splice(at, 1);
    clearTimeout(c.idle);
    c.client.close();
  }

  /**
   * `request` over a free connection. Async, so that a closed client's refusal is a rejected Promise, as
   * @libsql/client's own clients answer: callers await what they get, and may not expect a throw.
   */
  private async sent<T>(request: (client: Client) => Promise<T>): Promise<T> {
    return this.bounded(this.free(), request);
  }

  /** `request` over `c`; unanswered within the bound, it fails and `c` is closed. */
  private async bounded<T>(c: Connection, request: (client: Client) => Promise<T>): Promise<T> {
    if (c.waiting === 0) c.heardAt = Date.now();
    c.waiting++;
    clearTimeout(c.idle);
    const answer = request(c.client);
    answer.catch(() => {});
    let timedOut = false;
    try {
      timedOut = (await until(answer, Date.now() + this.ms)) === TIMED_OUT;
    } catch {
      // Its answer, a failure: returned below.
    }
    if (!timedOut) c.heardAt = Date.now();
    c.waiting--;
    if (timedOut && !c.gaveUp) {
      c.gaveUp = new Error(`no answer within ${this.ms} ms (store.timeout)`);
      this.drop(c);
    }
    if (c.gaveUp) throw c.gaveUp;
    this.release(c);
    return answer;
  }

  /** `c`, once it has nothing to do, is closed after IDLE_MS of it if another is free then. */
  private release(c: Connection): void {
    if (c.waiting > 0 || c.transactions > 0) return;
    clearTimeout(c.idle);
    c.idle = setTimeout(() => {
      if (this.connections.some((other) => other !== c && other.waiting === 0)) this.drop(c);
    }, IDLE_MS);
    c.idle.unref();
  }

  execute(statement: InStatement): Promise<ResultSet>;
  execute(sql: string, args?: InArgs): Promise<ResultSet>;
  execute(statement: InStatement | string, args?: InArgs): Promise<ResultSet> {
    return this.sent((c) => (typeof statement === "string" ? c.execute(statement, args) : c.execute(statement)));
  }

  batch(statements: Parameters<Client["batch"]>[0], mode?: TransactionMode): Promise<ResultSet[]> {
    return this.sent((c) => c.batch(statements, mode));
  }

  migrate(statements: InStatement[]): Promise<ResultSet[]> {
    return this.sent((c) => c.migrate(statements));
  }

  executeMultiple(sql: string): Promise<void> {
    return this.sent((c) => c.executeMultiple(sql));
  }

  /** Each request of the transaction is bounded too, over the connection that holds its stream. */
  async transaction(mode?: TransactionMode): Promise<Transaction> {
    const c = this.free();
    // Counted from the start: the connection must not be released as the transaction is handed out.
    c.transactions++;
    let open = true;
    const end = () => {
      if (!open) return;
      open = false;
      c.transactions--;
      if (!c.gaveUp) this.release(c);
    };
    let tx: Transaction;
    try {
      tx = await this.bounded(c, (client) => client.transaction(mode));
    } catch (error) {
      end();
      throw error;
    }
    const bounded = <T>(request: () => Promise<T>) => this.bounded(c, request);
    return {
      execute: (statement: InStatement) => bounded(() => tx.execute(statement)),
      batch: (statements: InStatement[]) => bounded(() => tx.batch(statements)),
      executeMultiple: (sql: string) => bounded(() => tx.executeMultiple(sql)),
      rollback: () => bounded(() => tx.rollback()).finally(end),
      commit: () => bounded(() => tx.commit()).finally(end),
      close() {
        tx.close();
        end();
      },
      get closed() {
        return tx.closed;
      },
    };
  }

  /** An embedded replica's: none over WebSocket (@libsql/client throws it at the call; here it is a rejection). */
  sync(): ReturnType<Client["sync"]> {
    return Promise.reject(new LibsqlError("sync not supported in ws mode", "SYNC_NOT_SUPPORTED"));
  }

  /**
   * Not supported: kubemeta never asks for it (a connection that fails is closed, and the next request opens
   * another), and @libsql/client's would wait unbounded for the new connection's hello. Thrown at the call: the Client
   * type declares `void`, so a caller has no promise whose rejection it would catch.
   */
  reconnect(): void {
    throw new LibsqlError("reconnect is not supported: close the client and create another", "RECONNECT_NOT_SUPPORTED");
  }

  close(): void {
    this.closed = true;
    this.tried?.client.close();
    for (const c of this.connections.splice(0)) this.drop(c);
  }
}
