/**
 * A request's STDERR: decoded as UTF-8 across records and handed to the Client's onStderr.
 * @module
 */
import type { RequestHead } from "./request.ts";

/** Where a STDERR message came from, for the Client's `onStderr`. */
export interface StderrInfo {
  /** The requestId on its connection. */
  readonly requestId: number;
  /** The request it belongs to (made from the URL when fetch() was given a string or URL). */
  readonly request: Request;
}

/** The STDERR of one request on one connection; made at its first STDERR record. */
export class StderrLog {
  // Kept per request and streaming: a UTF-8 character may straddle two STDERR records.
  readonly #decoder = new TextDecoder();
  readonly #onStderr: (message: string, info: StderrInfo) => void;
  readonly #head: RequestHead;
  readonly #requestId: number;

  constructor(onStderr: (message: string, info: StderrInfo) => void, head: RequestHead, requestId: number) {
    this.#onStderr = onStderr;
    this.#head = head;
    this.#requestId = requestId;
  }

  /** Logs what of `data` decodes to whole characters. */
  write(data: Uint8Array): void {
    const text = this.#decoder.decode(data, { stream: true });
    if (text !== "") this.#log(text);
  }

  /** Logs what is left (an incomplete character ends as U+FFFD); the request has ended. */
  flush(): void {
    const rest = this.#decoder.decode();
    if (rest !== "") this.#log(rest);
  }

  #log(text: string): void {
    try {
      const head = this.#head;
      let request = head.request;
      this.#onStderr(text, {
        requestId: this.#requestId,
        get request(): Request {
          return (request ??= new Request(head.url));
        },
      });
    } catch {
      // A throwing log callback must not break the response.
    }
  }
}
