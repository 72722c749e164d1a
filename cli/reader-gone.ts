/**
 * Whether the reader of `tail`'s stdout or stderr went away (`tail | head -1`, once head has its line). A write to the
 * pipe would fail with EPIPE, but on a quiet stream the next write may be hours away, and `tail -f` (coreutils 8.28
 * and later) ends at once. The pipe's own end says so without a write: poll(2) reports POLLERR on a pipe no reader
 * holds any more, POLLHUP on a socket whose peer closed. Neither Bun nor Node calls poll on a stream it only writes,
 * so it is called through bun:ffi, on Linux; elsewhere, or where libc cannot be loaded, the next write tells.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import { fstatSync } from "node:fs";

const POLLERR = 0x8;
const POLLHUP = 0x10;
/** Often enough to end with the reader, as `tail -f` does; one syscall a check. */
const CHECK_MS = 200;

/** A pipe or a socket, which a reader can leave: a file, a terminal, /dev/null have no such end. */
function canLoseItsReader(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    return stat.isFIFO() || stat.isSocket();
  } catch {
    return false;
  }
}

/**
 * Calls `onGone` with the first of `fds` whose reader went away, checking every CHECK_MS without keeping the process
 * alive; returns the function that stops the checks. Does nothing where poll(2) cannot be had.
 */
export function watchReaders(fds: number[], onGone: (fd: number) => void): () => void {
  const watched = fds.filter(canLoseItsReader);
  if (process.platform !== "linux" || watched.length === 0) return () => {};
  let libc: ReturnType<typeof openPoll>;
  try {
    libc = openPoll();
  } catch {
    return () => {};
  }
  // struct pollfd { int fd; short events; short revents; }, one a watched fd; no events asked: errors come anyway.
  const fdsView = new DataView(new ArrayBuffer(8 * watched.length));
  for (const [i, fd] of watched.entries()) fdsView.setInt32(8 * i, fd, true);
  const pointer = ptr(fdsView);
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    libc.close();
  };
  const timer = setInterval(() => {
    if (libc.symbols.poll(pointer, watched.length, 0) <= 0) return;
    const gone = watched.find((_, i) => (fdsView.getInt16(8 * i + 6, true) & (POLLERR | POLLHUP)) !== 0);
    if (gone === undefined) return;
    stop();
    onGone(gone);
  }, CHECK_MS);
  timer.unref();
  return stop;
}

function openPoll() {
  return dlopen("libc.so.6", { poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 } });
}
