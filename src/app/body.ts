/**
 * One input stream of a request (FCGI_STDIN or FCGI_DATA) as the handler reads it: a queue of
 * socket-chunk views with byte accounting, so the connection can decide when to stop reading
 * the socket (backpressure) and when a request has buffered too much (limit).
 * @module
 */
import { concatBytes } from "../bytes.ts";
import { Queue } from "../queue.ts";

const EMPTY = new Uint8Array(0);

/**
 * Buffered input of one stream. The connection pushes; the handler pulls, either through a
 * ReadableStream (created only when asked for: streams are costly on some runtimes) or with
 * {@link InputBody.readAll} for `text()`/`json()`/`arrayBuffer()`.
 */
export class InputBody {
  /** Bytes pushed and not yet handed to the reader. */
  buffered = 0;
  /** Bytes pushed in total (before any discard). */
  received = 0;
  /** The stream's empty record arrived (or the stream was cut short by {@link fail}). */
  ended = false;
  /** The reader gave up (cancel) or the request ended: further input is dropped, not kept. */
  discarding = false;
  /** The reader was handed a stream or a read was started. */
  disturbed = false;
  /** Called when the reader took bytes or gave up, so the connection can resume reading the socket. */
  onConsume: (() => void) | undefined;

  readonly #chunks = new Queue<Uint8Array>();
  #error: unknown = undefined;
  #waiter: (() => void) | undefined;
  #stream: ReadableStream<Uint8Array> | undefined;

  /** A reader is waiting for bytes that have not arrived: the socket must keep flowing for it. */
  get waiting(): boolean {
    return this.#waiter !== undefined;
  }

  /** The stream handed out by {@link stream} has a reader. */
  get locked(): boolean {
    return this.#stream?.locked ?? false;
  }

  /** Appends a chunk (a view the caller will not reuse). */
  push(data: Uint8Array): void {
    this.received += data.byteLength;
    if (this.discarding || this.ended || data.byteLength === 0) return;
    this.#chunks.push(data);
    this.buffered += data.byteLength;
    this.#wake();
  }

  /** The stream ended normally. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.#wake();
  }

  /** Ends the stream with an error: readers see it, buffered bytes are dropped. */
  fail(error: unknown): void {
    if (this.#error !== undefined) return;
    this.#error = error;
    this.ended = true;
    this.discard();
    this.#wake();
  }

  /** Drops what is buffered and anything that arrives later. */
  discard(): void {
    this.discarding = true;
    this.#chunks.clear();
    this.buffered = 0;
    this.onConsume?.();
  }

  /** The next chunk, or null at the end. Rejects with the failure, if any. */
  async read(): Promise<Uint8Array | null> {
    this.disturbed = true;
    for (;;) {
      if (this.#chunks.length > 0) return this.#take();
      if (this.#error !== undefined) throw this.#error;
      if (this.ended) return null;
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
        // A reader now waits: the connection may have paused for this very request.
        this.onConsume?.();
      });
    }
  }

  /** Every remaining byte, in one array. */
  async readAll(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const chunk = await this.read();
      if (chunk === null) break;
      parts.push(chunk);
      total += chunk.byteLength;
    }
    if (parts.length === 0) return EMPTY;
    if (parts.length === 1) return parts[0];
    return concatBytes(parts, total);
  }

  /** The body as a ReadableStream: pulled on demand, so unread bytes stay counted in {@link buffered}. */
  stream(): ReadableStream<Uint8Array> {
    if (this.#stream) return this.#stream;
    this.#stream = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          try {
            const chunk = await this.read();
            if (chunk === null) controller.close();
            else controller.enqueue(chunk);
          } catch (error) {
            controller.error(error);
          }
        },
        cancel: () => {
          this.discard();
        },
      },
      // No read-ahead: bytes wait in this queue, where the connection counts them.
      { highWaterMark: 0 },
    );
    return this.#stream;
  }

  #take(): Uint8Array {
    const chunk = this.#chunks.shift()!;
    this.buffered -= chunk.byteLength;
    this.onConsume?.();
    return chunk;
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter();
    }
  }
}
