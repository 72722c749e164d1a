/**
 * A remote store over `ws(s)://` whose requests are bounded by `store.timeout`, as over `http(s)://`.
 *
 * @libsql/client sends every request of a ws client over one WebSocket and gives none a deadline: a connection that
 * stops answering (left hanging by a failover or a NAT that lost its entry, or on a path that drops packets) holds a
 * commit on it for good, and every later request, sent over the same connection, with it. Over `http(s)://` a request
 * unanswered in time fails (connection.ts) and the next one takes another connection. Here the same: a request
 * unanswered within the bound fails, and the client it went through is closed, which fails the others waiting on that
 * connection at once (they would wait as long); the next request goes through a new client, over a new connection.
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

export class BoundedWsClient implements Client {
  private client?: Client;
  closed = false;
  readonly protocol = "ws";

  constructor(
    private readonly config: Config,
    private readonly ms: number,
  ) {
    this.client = createClient(config);
  }

  /** The client requests go through: a new one once the last was given up. */
  private current(): Client {
    if (!this.client && this.closed) throw new LibsqlError("The client is closed", "CLIENT_CLOSED");
    this.client ??= createClient(this.config);
    return this.client;
  }

  /** `request` through `client`; unanswered within the bound, it fails, and `client` is closed and not used again. */
  private async bounded<T>(client: Client, request: (client: Client) => Promise<T>): Promise<T> {
    const answer = request(client);
    answer.catch(() => {});
    if ((await until(answer, Date.now() + this.ms)) !== TIMED_OUT) return answer;
    if (this.client === client) this.client = undefined;
    client.close();
    throw new Error(`no answer within ${this.ms} ms (store.timeout)`);
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

  /** Each request of the transaction bounded too: it holds a stream of one connection, given up with it. */
  async transaction(mode?: TransactionMode): Promise<Transaction> {
    const client = this.current();
    const tx = await this.bounded(client, (c) => c.transaction(mode));
    const bounded = <T>(request: () => Promise<T>) => this.bounded(client, request);
    return {
      execute: (statement: InStatement) => bounded(() => tx.execute(statement)),
      batch: (statements: InStatement[]) => bounded(() => tx.batch(statements)),
      executeMultiple: (sql: string) => bounded(() => tx.executeMultiple(sql)),
      rollback: () => bounded(() => tx.rollback()),
      commit: () => bounded(() => tx.commit()),
      close: () => tx.close(),
      get closed() {
        return tx.closed;
      },
    };
  }

  sync(): ReturnType<Client["sync"]> {
    return this.current().sync();
  }

  reconnect(): void {
    this.current().reconnect();
  }

  close(): void {
    this.closed = true;
    this.client?.close();
  }
}
