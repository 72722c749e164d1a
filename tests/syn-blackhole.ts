/**
 * A loopback port whose SYNs get no answer, as behind a firewall that drops packets, without root: a listening
 * socket nobody accepts from, its accept queue full. listen(2) with a backlog of 0 queues one connection (the
 * filler), and Linux drops the SYN of every connection past a full queue, so a client's connect waits in SYN_SENT,
 * retrying, until the kernel gives up (about two minutes). Node and Bun accept whatever their servers queue: the
 * socket is libc's.
 */
import { dlopen, FFIType } from "bun:ffi";
import { createConnection, type Socket } from "node:net";

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCKADDR_IN_BYTES = 16;

export interface SynBlackhole {
  port: number;
  stop(): void;
}

function libc() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  });
}

/** 127.0.0.1, port 0 (the kernel's pick), as struct sockaddr_in. */
function loopbackAddress(): Uint8Array {
  const address = new Uint8Array(SOCKADDR_IN_BYTES);
  new DataView(address.buffer).setUint16(0, AF_INET, true);
  address.set([127, 0, 0, 1], 4);
  return address;
}

export async function startSynBlackhole(): Promise<SynBlackhole> {
  const lib = libc();
  const { symbols } = lib;
  const fd = symbols.socket(AF_INET, SOCK_STREAM, 0);
  let filler: Socket | undefined;
  const stop = () => {
    filler?.destroy();
    symbols.close(fd);
    lib.close();
  };
  try {
    if (fd < 0) throw new Error("socket(2) failed");
    const address = loopbackAddress();
    const length = new Uint32Array([SOCKADDR_IN_BYTES]);
    if (symbols.bind(fd, address, SOCKADDR_IN_BYTES) !== 0 || symbols.listen(fd, 0) !== 0)
      throw new Error("bind(2) or listen(2) failed");
    if (symbols.getsockname(fd, address, length) !== 0) throw new Error("getsockname(2) failed");
    const port = new DataView(address.buffer).getUint16(2, false);
    const connecting = createConnection(port, "127.0.0.1");
    filler = connecting;
    await new Promise<void>((resolve, reject) => {
      connecting.once("connect", resolve);
      connecting.once("error", reject);
    });
    return { port, stop };
  } catch (error) {
    stop();
    throw error;
  }
}
