/**
 * logrotate's `copytruncate` in a tight loop, as a process of its own beside the writer: once FILE holds ROTATE_AT
 * bytes or more, after a random wait of up to MAX_WAIT_US microseconds (to land anywhere in the writer's steps), it
 * copies the file and truncates it to 0. After ROTATIONS rotations, or DEADLINE_MS, prints what it saw as JSON: how
 * many copies, and those holding an empty line or a NUL byte, which no appending writer's whole lines hold.
 */
import { readFileSync, truncateSync } from "node:fs";

const file = process.env.FILE!;
const rotateAt = Number(process.env.ROTATE_AT ?? 1);
const maxWaitUs = Number(process.env.MAX_WAIT_US ?? 0);
const rotations = Number(process.env.ROTATIONS ?? 1000);
const deadline = performance.now() + Number(process.env.DEADLINE_MS ?? 10_000);

const seen = { copies: 0, emptyLines: 0, nuls: 0 };
const busyWaitUs = (us: number) => {
  const until = performance.now() + us / 1000;
  while (performance.now() < until);
};
const read = () => {
  try {
    return readFileSync(file);
  } catch {
    return Buffer.alloc(0);
  }
};
while (seen.copies < rotations && performance.now() < deadline) {
  if (read().length < rotateAt) continue;
  busyWaitUs(Math.random() * maxWaitUs);
  const copy = read().toString("latin1");
  truncateSync(file, 0);
  seen.copies++;
  if (copy.startsWith("\n") || copy.includes("\n\n")) seen.emptyLines++;
  if (copy.includes("\0")) seen.nuls++;
}
console.log(JSON.stringify(seen));
