/**
 * A request's input streams (STDIN, and DATA for a Filter) on their way to the backend: bytes in
 * hand go out at once, a ReadableStream is pumped only as fast as the socket drains.
 * @module
 */
import type { BackendSocket } from "./socket.ts";

/** One input stream (STDIN or DATA) to send: nothing, bytes in hand, or a stream to pump. */
export type InputSource =
  | { kind: "none" }
  | { kind: "bytes"; chunks: Uint8Array[]; length: number }
  | { kind: "stream"; stream: ReadableStream<Uint8Array>; length: number | null };

/** Queues a source that is not a stream, and its end, on the core (the caller flushes). */
export function sendInputBytes(core: BackendSocket["core"], requestId: number, source: InputSource, data: boolean): void {
  if (source.kind === "bytes") for (const chunk of source.chunks) data ? core.data(requestId, chunk) : core.stdin(requestId, chunk);
  if (data) core.dataEnd(requestId);
  else core.stdinEnd(requestId);
}

/** What a pump asks of the request it sends for. */
export interface PumpOwner {
  /** Whether the request is still on `socket` and still wants to send. */
  sendsOn(socket: BackendSocket): boolean;
  /** A piece went out (the backend is not the one keeping the request waiting). */
  sent(): void;
}

/** Sends input streams on one socket, with backpressure; cancel() stops it while it reads. */
export class InputPump {
  readonly #owner: PumpOwner;
  readonly #socket: BackendSocket;
  readonly #requestId: number;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;

  constructor(owner: PumpOwner, socket: BackendSocket, requestId: number) {
    this.#owner = owner;
    this.#socket = socket;
    this.#requestId = requestId;
  }

  /** Sends one input stream and its end; throws when the stream fails or breaks its declared length. */
  async send(source: InputSource, data: boolean): Promise<void> {
    const socket = this.#socket;
    const requestId = this.#requestId;
    const core = socket.core;
    const stillOurs = () => this.#owner.sendsOn(socket) && core.isActive(requestId);
    if (source.kind !== "stream") {
      if (!stillOurs()) return;
      sendInputBytes(core, requestId, source, data);
      socket.flush();
      return;
    }
    const name = data ? "FCGI_DATA stream" : "request body";
    const reader = source.stream.getReader();
    this.#reader = reader;
    let sent = 0;
    try {
      for (;;) {
        if (!socket.writable) await socket.drained();
        if (!stillOurs()) return;
        const { done, value } = await reader.read();
        if (!stillOurs()) return;
        if (done) break;
        if (!(value instanceof Uint8Array)) throw new TypeError(`the ${name} yielded a ${typeof value}, not a Uint8Array`);
        sent += value.length;
        if (source.length !== null && sent > source.length) {
          throw new TypeError(`the ${name} is longer than its declared length (${source.length} bytes)`);
        }
        if (data) core.data(requestId, value);
        else core.stdin(requestId, value);
        socket.flush();
        this.#owner.sent();
      }
      if (source.length !== null && sent !== source.length) {
        throw new TypeError(`the ${name} ended after ${sent} bytes, but its declared length is ${source.length}`);
      }
      if (data) core.dataEnd(requestId);
      else core.stdinEnd(requestId);
      socket.flush();
    } finally {
      this.#reader = null;
      reader.releaseLock();
    }
  }

  /** The request is over: a read in progress is cancelled with `reason`. */
  cancel(reason: unknown): void {
    const reader = this.#reader;
    if (reader !== null) reader.cancel(reason).catch(() => {});
  }
}
