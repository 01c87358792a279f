/**
 * A request's STDOUT: parsed as a CGI response into a Response whose body streams with
 * backpressure (the socket pauses for a lone consumer that does not read, and a multiplexed one
 * is cut off past maxResponseBuffer).
 * @module
 */
import { FastCGIError } from "../errors.ts";
import { concatBytes } from "../bytes.ts";
import { NativeResponse } from "../native.ts";
import { CgiResponseParser } from "./cgi_response.ts";

/** Response body queue size before the socket pauses (or, multiplexed, buffering starts to count). */
const BODY_HIGH_WATER_MARK = 128 * 1024;
const NULL_BODY_STATUS = new Set([204, 205, 304]);

/** What a response body asks of its request. */
export interface BodyOwner {
  /** Whether the socket keeps reading for a full consumer (multiplexed), so buffering is capped. */
  readonly multiplexed: boolean;
  /** The queue went over, or back under, its high-water mark: the socket re-decides whether to read. */
  flowChanged(resumed: boolean): void;
  /** The request cannot go on: the consumer cancelled (null) or buffered too much. */
  giveUp(error: unknown): void;
}

/** The response of one request on one connection, from its first STDOUT byte to its last. */
export class ResponseBody {
  /** The queue is over its high-water mark: its consumer is not keeping up. */
  full = false;
  readonly #owner: BodyOwner;
  readonly #parser: CgiResponseParser;
  readonly #maxResponseBuffer: number;
  readonly #requestId: number;
  #controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  /** Body bytes that came after the head within the same turn, before the Response was made. */
  #early: Uint8Array[] | null = null;
  /**
   * Body bytes of this turn (one socket read's records), handed to the stream as one chunk at its
   * end: a reader takes one chunk per turn, so a chunk per record would let a socket whose reads
   * resolve as microtasks (Deno) outpace a reader that never stops reading.
   */
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;

  constructor(owner: BodyOwner, requestId: number, maxHeaderBytes: number, maxResponseBuffer: number) {
    this.#owner = owner;
    this.#requestId = requestId;
    this.#parser = new CgiResponseParser(maxHeaderBytes);
    this.#maxResponseBuffer = maxResponseBuffer;
  }

  /**
   * Takes a piece of STDOUT. True when it completed the head: the caller makes the Response at
   * the end of this turn, with {@link respond}. Throws when the head is not valid CGI output.
   */
  push(data: Uint8Array): boolean {
    const parser = this.#parser;
    if (!parser.done) {
      const body = parser.push(data);
      if (body === null) return false;
      this.#early = body.length > 0 ? [body] : [];
      return true;
    }
    if (this.#early !== null) this.#early.push(data);
    else this.#enqueue(data);
    return false;
  }

  /**
   * The Response, or null when the request failed since the head came. `complete`: END_REQUEST
   * came already, so the body is bytes in hand rather than a stream (far cheaper to make, to
   * read, and to send on). The bytes that came with the head go to the stream with
   * {@link deliverEarly}, once the Response is handed out.
   */
  respond(method: string, complete: boolean): Response | null {
    const early = this.#early;
    if (early === null) return null;
    const head = this.#parser.head!;
    const discard = method === "HEAD" || NULL_BODY_STATUS.has(head.status);
    let body: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer> | null = null;
    if (discard) {
      // no body, whatever the backend sent
    } else if (complete) {
      // Views of socket reads, whose buffers are plain ArrayBuffers.
      body = (early.length === 1 ? early[0]! : concatBytes(early)) as Uint8Array<ArrayBuffer>;
    } else {
      body = new ReadableStream<Uint8Array>(
        {
          start: (controller) => {
            this.#controller = controller;
          },
          pull: () => {
            if (this.full) {
              this.full = false;
              this.#owner.flowChanged(true);
            }
          },
          cancel: () => {
            this.#controller = null;
            this.#owner.giveUp(null);
          },
        },
        { highWaterMark: BODY_HIGH_WATER_MARK, size: (chunk) => chunk.byteLength },
      );
    }
    try {
      return new NativeResponse(body, { status: head.status, statusText: head.statusText, headers: head.headers });
    } catch (error) {
      this.#early = null;
      throw new FastCGIError("BAD_RESPONSE", `the CGI response cannot be a Response: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Queues the body bytes that came with the head, now that the Response is out. */
  deliverEarly(): void {
    const early = this.#early;
    this.#early = null;
    if (early !== null && this.#controller !== null) for (const chunk of early) this.#enqueue(chunk);
  }

  /** END_REQUEST came: throws when the CGI response was cut short (no complete head). */
  end(): void {
    this.#parser.end();
  }

  /** The body is complete: the stream ends. */
  close(): void {
    this.#flush();
    if (this.#controller !== null) {
      this.#controller.close();
      this.#controller = null;
    }
  }

  /** The request failed: bytes waiting for the Response are dropped. */
  dropEarly(): void {
    this.#early = null;
  }

  /** The request failed after its Response was out: the stream errors (null: it was cancelled). */
  fail(error: unknown): void {
    if (this.#controller !== null) {
      if (error !== null) this.#controller.error(error);
      this.#controller = null;
    }
  }

  #enqueue(data: Uint8Array): void {
    if (this.#controller === null) return; // a body-less status, or a cancelled body
    if (this.#pending.length === 0) queueMicrotask(() => this.#flush());
    this.#pending.push(data);
    this.#pendingBytes += data.length;
  }

  /** Hands this turn's bytes to the stream, unless the consumer left too much unread from earlier turns. */
  #flush(): void {
    const pending = this.#pending;
    const controller = this.#controller;
    if (pending.length === 0) return;
    const size = this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (controller === null) return;
    // Only bytes that waited while more came count: the ones of this turn had no reader yet. Only a
    // multiplexed socket keeps reading for a consumer that does not (a lone one pauses instead).
    const waiting = BODY_HIGH_WATER_MARK - (controller.desiredSize ?? BODY_HIGH_WATER_MARK);
    if (waiting > this.#maxResponseBuffer && this.#owner.multiplexed) return this.#overflow();
    controller.enqueue(pending.length === 1 ? pending[0]! : concatBytes(pending, size));
    if ((controller.desiredSize ?? 1) > 0 || this.full) return;
    this.full = true;
    this.#owner.flowChanged(false);
  }

  /** A multiplexed response whose consumer does not read: its buffer hit the limit. */
  #overflow(): void {
    this.#owner.giveUp(new FastCGIError(
      "LIMIT_EXCEEDED",
      `the response body's consumer did not keep up: more than ${this.#maxResponseBuffer} bytes buffered on a multiplexed connection`,
      { requestId: this.#requestId, limit: "maxResponseBuffer" },
    ));
  }
}
