/**
 * A remote store over `ws(s)://` whose requests are bounded by `store.timeout`, as over `http(s)://`.
 *
 * @libsql/client sends every request of a ws client over one WebSocket and gives none a deadline: a connection that
 * stops answering (left hanging by a failover or a NAT that lost its entry, or on a path that drops packets) holds a
 * commit on it for good, and every later request, sent over the same connection, with it. Over `http(s)://` a request
 * unanswered in time fails (connection.ts), and a request never waits behind another: one made while a connection
 * hangs takes another. Here the same, a client being one connection: a request unanswered within the bound fails, and
 * its client is closed, which fails the others waiting on it at once (they would wait as long); and a connection that
 * has answered nothing for STALLED_MS while requests wait on it takes no new ones: they go through a new client, the
 * old one closed once nothing waits on it (or at the bound). A transaction stays on its connection.
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

/**
 * A connection with requests waiting that has answered nothing for this long is taken to hang: new requests go over
 * another. Well above a round trip and a commit (0.1–0.5 s for the largest); a slow answer costs a connection at worst.
 */
export const STALLED_MS = 2_000;

interface Connection {
  client: Client;
  /** Requests waiting for their answer. */
  waiting: number;
  /** Transactions open on it: they need it until they end. */
  transactions: number;
  /** When it last answered, or began to wait for an answer (performance.now()). */
  heardAt: number;
  /** Takes no new request: closed once nothing needs it. */
  retired: boolean;
  /** Set when a request on it went unanswered past the bound: what every request failed by its close is told. */
  gaveUp?: Error;
}

export class BoundedWsClient implements Client {
  /** Where new requests go; undefined once it was retired, until the next request. */
  private connection?: Connection;
  private readonly connections = new Set<Connection>();
  closed = false;
  readonly protocol = "ws";

  constructor(
    private readonly config: Config,
    private readonly ms: number,
  ) {
    this.connection = this.connect();
  }

  private connect(): Connection {
    const connection = { client: createClient(this.config), waiting: 0, transactions: 0, heardAt: 0, retired: false };
    this.connections.add(connection);
    return connection;
  }

  /** The connection a new request goes over. */
  private current(): Connection {
    const c = this.connection;
    if (c && c.waiting > 0 && performance.now() - c.heardAt > STALLED_MS) this.retire(c, false);
    if (!this.connection) {
      if (this.closed) throw new LibsqlError("The client is closed", "CLIENT_CLOSED");
      this.connection = this.connect();
    }
    return this.connection;
  }

  /** No new request goes over `c`; closed, failing what waits on it, `now`, else once nothing needs it. */
  private retire(c: Connection, now: boolean): void {
    c.retired = true;
    if (this.connection === c) this.connection = undefined;
    if (now || (c.waiting === 0 && c.transactions === 0)) {
      c.client.close();
      this.connections.delete(c);
    }
  }

  /** `request` over `c`; unanswered within the bound, it fails and `c` is closed. */
  private async bounded<T>(c: Connection, request: (client: Client) => Promise<T>): Promise<T> {
    if (c.waiting++ === 0) c.heardAt = performance.now();
    const answer = request(c.client);
    answer.catch(() => {});
    let timedOut = false;
    try {
      timedOut = (await until(answer, Date.now() + this.ms)) === TIMED_OUT;
    } catch {
      // Its answer, a failure: returned below.
    }
    c.waiting--;
    if (timedOut && !c.gaveUp) {
      c.gaveUp = new Error(`no answer within ${this.ms} ms (store.timeout)`);
      this.retire(c, true);
    }
    if (c.gaveUp) throw c.gaveUp;
    c.heardAt = performance.now();
    if (c.retired) this.retire(c, false);
    return answer;
  }

  execute(statement: InStatement): Promise<ResultSet>;
  execute(sql: string, args?: InArgs): Promise<ResultSet>;
  execute(statement: InStatement | string, args?: InArgs): Promise<ResultSet> {
    return this.bounded(this.current(), (c) =>
      typeof statement === "string" ? c.execute(statement, args) : c.execute(statement),
    );
  }

  batch(statements: Parameters<Client["batch"]>[0], mode?: TransactionMode): Promise<ResultSet[]> {
    return this.bounded(this.current(), (c) => c.batch(statements, mode));
  }

  migrate(statements: InStatement[]): Promise<ResultSet[]> {
    return this.bounded(this.current(), (c) => c.migrate(statements));
  }

  executeMultiple(sql: string): Promise<void> {
    return this.bounded(this.current(), (c) => c.executeMultiple(sql));
  }

  /** Each request of the transaction is bounded too, over the connection that holds its stream. */
  async transaction(mode?: TransactionMode): Promise<Transaction> {
    const c = this.current();
    const tx = await this.bounded(c, (client) => client.transaction(mode));
    c.transactions++;
    let open = true;
    const end = () => {
      if (!open) return;
      open = false;
      c.transactions--;
      if (c.retired) this.retire(c, false);
    };
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

  sync(): ReturnType<Client["sync"]> {
    return this.current().client.sync();
  }

  reconnect(): void {
    this.current().client.reconnect();
  }

  close(): void {
    this.closed = true;
    this.connection = undefined;
    for (const c of this.connections) c.client.close();
    this.connections.clear();
  }
}
