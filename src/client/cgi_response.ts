/**
 * Reads a CGI response (RFC 3875 §6) from the STDOUT stream: the header block, which may be cut
 * anywhere by record boundaries, then the body, which is not this parser's business.
 * @module
 */
import { decodeLatin1 } from "../codec/latin1.ts";
import { FastCGIError } from "../errors.ts";

/** The status and headers a CGI header block describes. */
export interface CgiHead {
  /** From `Status:`, else 302 when `Location:` is present, else 200. */
  status: number;
  /** The reason phrase of `Status:` ("" when none was given). */
  statusText: string;
  /** Every header line but `Status:`, in order (several `Set-Cookie` lines stay separate). */
  headers: Headers;
}

/** The default limit on the header block's size, in bytes (the blank line included). */
export const DEFAULT_MAX_HEADER_BYTES: number = 64 * 1024;

const LF = 0x0a;
const CR = 0x0d;
/** RFC 9110 token characters: what a header name may consist of. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const STATUS = /^(\d{3})(?:[ \t]+(.*))?$/;

/**
 * An incremental CGI header parser. Feed it STDOUT pieces with {@link push} until it returns the
 * body bytes that follow the blank line; {@link head} then holds the status and headers.
 * Header bytes are decoded as latin1, so every byte survives (header values are byte strings).
 *
 * Errors (FastCGIError BAD_RESPONSE, LIMIT_EXCEEDED for the size): a header block over the
 * limit, a line without a colon, a name that is not a token, NUL or a stray CR in a line, a
 * continuation line, a `Status:` that is not a 3-digit code in 200..599, and (from {@link end})
 * output that ended before the blank line.
 *
 * @example
 * ```ts
 * const parser = new CgiResponseParser();
 * const body = parser.push(new TextEncoder().encode("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope"));
 * parser.head!.status; // 404
 * body;                // the bytes of "nope"
 * ```
 */
export class CgiResponseParser {
  /** The parsed head, once the blank line arrived. */
  head: CgiHead | null = null;
  readonly #maxHeaderBytes: number;
  /** Bytes of a header block cut by a piece boundary, copied (pieces are views of socket chunks). */
  #buffer: Uint8Array | null = null;
  #length = 0;
  /** Lines before this offset of the buffer are known not to end the block. */
  #scanned = 0;

  /** `maxHeaderBytes`: the largest header block accepted (default 64 KiB). */
  constructor(maxHeaderBytes: number = DEFAULT_MAX_HEADER_BYTES) {
    this.#maxHeaderBytes = maxHeaderBytes;
  }

  /** True once the header block is complete. */
  get done(): boolean {
    return this.head !== null;
  }

  /**
   * Feeds one STDOUT piece. Returns null while the header block is incomplete, then the bytes
   * after the blank line in this piece (possibly empty; a view of `piece` or of the buffer).
   * Must not be called once it returned the body.
   */
  push(piece: Uint8Array): Uint8Array | null {
    if (this.head !== null) throw new Error("CgiResponseParser.push after the header block ended");
    if (this.#buffer === null) {
      // The usual case: the whole header block is in the first piece; nothing is copied.
      const end = findBlankLine(piece, 0);
      if (end >= 0) {
        this.#checkSize(end);
        this.head = parseHead(piece, end);
        return piece.subarray(end);
      }
      this.#checkSize(piece.length);
      this.#buffer = new Uint8Array(Math.min(Math.max(piece.length * 2, 1024), this.#maxHeaderBytes + 4));
      this.#buffer.set(piece);
      this.#length = piece.length;
      return null;
    }
    const total = this.#length + piece.length;
    if (total > this.#buffer.length) {
      const grown = new Uint8Array(Math.min(Math.max(total, this.#buffer.length * 2), this.#maxHeaderBytes + 4 + piece.length));
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(piece, this.#length);
    this.#length = total;
    // A blank line may straddle the pieces: resume a little before the old end.
    const end = findBlankLine(this.#buffer.subarray(0, total), Math.max(0, this.#scanned - 2));
    if (end < 0) {
      this.#checkSize(total);
      this.#scanned = total;
      return null;
    }
    this.#checkSize(end);
    const buffer = this.#buffer;
    this.head = parseHead(buffer, end);
    this.#buffer = null;
    return buffer.subarray(end, total);
  }

  /** STDOUT ended. Throws BAD_RESPONSE if the header block never ended. */
  end(): void {
    if (this.head !== null) return;
    const got = this.#length === 0 ? "no output at all" : `${this.#length} bytes without the blank line that ends the headers`;
    throw new FastCGIError("BAD_RESPONSE", `the FastCGI application's response ended before its CGI header block did: ${got}`);
  }

  #checkSize(size: number): void {
    // The block size counts up to and including the blank line; `size` may still lack the last
    // line end, so allow those few bytes.
    if (size > this.#maxHeaderBytes + 2) {
      throw new FastCGIError("LIMIT_EXCEEDED", `the CGI header block is larger than ${this.#maxHeaderBytes} bytes`, { limit: "maxHeaderBytes" });
    }
  }
}

/**
 * The offset just past the blank line ending the header block in `bytes` (LF LF, CR LF CR LF or
 * a mix), or -1. `from` is where scanning may resume (a line start, or earlier).
 * A block that starts with a blank line is empty: the offset is then 1 or 2.
 */
function findBlankLine(bytes: Uint8Array, from: number): number {
  const length = bytes.length;
  if (from === 0) {
    if (length > 0 && bytes[0] === LF) return 1;
    if (length > 1 && bytes[0] === CR && bytes[1] === LF) return 2;
  }
  let i = bytes.indexOf(LF, from);
  while (i >= 0 && i + 1 < length) {
    const next = bytes[i + 1];
    if (next === LF) return i + 2;
    if (next === CR) {
      if (i + 2 >= length) return -1;
      if (bytes[i + 2] === LF) return i + 3;
    }
    i = bytes.indexOf(LF, i + 1);
  }
  return -1;
}

/** Parses the header block `bytes[0, end)` (which ends with the blank line). */
function parseHead(bytes: Uint8Array, end: number): CgiHead {
  const text = decodeLatin1(bytes.subarray(0, end));
  const headers = new Headers();
  let status = 0;
  let statusText = "";
  let location = false;
  let start = 0;
  for (;;) {
    let stop = text.indexOf("\n", start);
    if (stop < 0) stop = text.length;
    let line = text.slice(start, stop);
    start = stop + 1;
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line === "") break;
    if (line.includes("\0")) throw bad(`a CGI header line contains NUL: ${show(line)}`);
    if (line.includes("\r")) throw bad(`a CGI header line contains a bare CR: ${show(line)}`);
    if (line[0] === " " || line[0] === "\t") throw bad(`a CGI header continuation line (obsolete line folding) is not accepted: ${show(line)}`);
    const colon = line.indexOf(":");
    if (colon < 0) throw bad(`a CGI header line has no colon: ${show(line)}`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw bad(`a CGI header name is not a valid token: ${show(name)}`);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    const lower = name.toLowerCase();
    if (lower === "status") {
      const m = STATUS.exec(value);
      const code = m === null ? NaN : Number(m[1]);
      if (!(code >= 200 && code <= 599)) throw bad(`the CGI Status header is not a status code in 200..599: ${show(value)}`);
      status = code;
      statusText = m![2] ?? "";
      continue;
    }
    if (lower === "location") location = true;
    try {
      headers.append(name, value);
    } catch (error) {
      throw new FastCGIError("BAD_RESPONSE", `a CGI header is not a valid HTTP header: ${show(line)}`, { cause: error });
    }
  }
  // RFC 3875 §6.2.3: a client redirect (Location without Status) is a 302, as nginx answers.
  if (status === 0) status = location ? 302 : 200;
  return { status, statusText, headers };
}

function bad(message: string): FastCGIError {
  return new FastCGIError("BAD_RESPONSE", message);
}

function show(text: string): string {
  return JSON.stringify(text.length > 200 ? text.slice(0, 200) + "…" : text);
}

