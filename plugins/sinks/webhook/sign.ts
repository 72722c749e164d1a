/**
 * Webhook signatures: HMAC-SHA256, keyed with the shared secret, over `<timestamp>.<body>`,
 * where the timestamp is Unix seconds sent in its own header. Signing the timestamp lets a
 * receiver reject replays of an old request; each retry is signed afresh.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const TIMESTAMP_HEADER = "X-Kubemeta-Timestamp";
export const SIGNATURE_HEADER = "X-Kubemeta-Signature";

/** `sha256=<hex>` for a body sent at `timestamp` (Unix seconds). */
export function sign(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/**
 * What a receiver runs (the README shows the same lines): true when `signature` is the
 * body's signature at `timestamp` and the timestamp is within `toleranceSeconds` of now.
 */
export function verify(
  secret: string,
  timestamp: string | null,
  signature: string | null,
  body: string,
  toleranceSeconds = 300,
): boolean {
  const sentAt = Number(timestamp);
  if (!timestamp || !Number.isInteger(sentAt) || Math.abs(Date.now() / 1000 - sentAt) > toleranceSeconds) return false;
  const expected = Buffer.from(sign(secret, sentAt, body));
  const given = Buffer.from(signature ?? "");
  return given.length === expected.length && timingSafeEqual(given, expected);
}
