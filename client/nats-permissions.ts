/**
 * The NATS server's permission errors as the client library reads them. nats-core hands a refused subscription its
 * error, but tells a refused publish on the connection's statuses only (its subject, never which message), so a
 * replay request waits for the refusals of its subject here. Known by their shape: this library loads no NATS
 * package at run time (nats.ts).
 */

/** nats-core's PermissionViolationError: `Permissions Violation for Publish to "<subject>"` and the like. */
interface PermissionViolation extends Error {
  operation: "publish" | "subscription";
  subject: string;
}

export function isPermissionViolation(error: unknown, operation: PermissionViolation["operation"]): boolean {
  return (
    error instanceof Error &&
    error.name === "PermissionViolationError" &&
    (error as Partial<PermissionViolation>).operation === operation
  );
}

/** The connection's refusals to publish to one subject, for whoever listens at the time. */
export class PublishRefusals {
  private readonly listeners = new Set<(error: Error) => void>();
  private readonly subject: string;

  constructor(subject: string) {
    this.subject = subject;
  }

  /** An error status of the connection: a refusal to publish to the subject goes to every listener. */
  take(error: Error): void {
    if (!isPermissionViolation(error, "publish") || (error as PermissionViolation).subject !== this.subject) return;
    for (const listener of [...this.listeners]) listener(error);
  }

  /** Calls `listener` with each refusal until the function returned is called. */
  listen(listener: (error: Error) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
