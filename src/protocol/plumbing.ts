/**
 * What the two sans-IO protocol cores (app_connection.ts, client_connection.ts) both keep besides
 * their state tables: the record decoder with its count of ignored records, the queue of bytes to
 * write, the 8-byte body of a BEGIN_REQUEST or END_REQUEST gathered from its pieces, and the
 * name-value pairs of a management record.
 * @module
 */

import { RecordDecoder } from "../codec/decoder.ts";
import { encodeStream } from "../codec/encode.ts";
import { PairDecoder, type Params } from "../codec/pairs.ts";
import { PIECE_END, PIECE_START, PIECE_WHOLE, type PairLimits, type RecordHandler } from "../codec/types.ts";
import { FastCGIError } from "../errors.ts";
import { FCGI_MAX_CONTENT_LENGTH } from "./constants.ts";

/** The records of one connection's input, decoded and handed to a core, which may ignore some. */
export class RecordInput {
  readonly #decoder: RecordDecoder = new RecordDecoder();
  readonly #onRecord: RecordHandler;
  #ignored = 0;

  /** `onRecord` gets every record piece. */
  constructor(onRecord: RecordHandler) {
    this.#onRecord = onRecord;
  }

  /**
   * Decodes one chunk; pieces go to the handler. Returns the decoding error that ends the stream
   * (a bad version byte), if one came: one closure per connection less than an error callback.
   * Any other error propagates.
   */
  receive(chunk: Uint8Array): FastCGIError | undefined {
    try {
      this.#decoder.decode(chunk, this.#onRecord);
    } catch (error) {
      return asFastCGIError(error);
    }
    return undefined;
  }

  /** True between records: no header, content or padding bytes are outstanding. */
  get idle(): boolean {
    return this.#decoder.idle;
  }

  /** Counts a record the core drops whole: once, at its first piece (given its flags), or now (no flags). */
  ignore(flags: number = PIECE_START): void {
    if (flags & PIECE_START) this.#ignored++;
  }

  /** How many whole records were ignored. */
  get ignored(): number {
    return this.#ignored;
  }
}

/** The encoded records a core has queued for the socket, in order, and their size. */
export class OutputQueue {
  /** Made at the first record after a take(): an idle connection holds no array here. */
  #records: Uint8Array[] | undefined;
  #bytes = 0;

  /** How many bytes {@link take} would return now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Queues encoded records. */
  push(bytes: Uint8Array): void {
    (this.#records ??= []).push(bytes);
    this.#bytes += bytes.length;
  }

  /** Queues `data` as records of stream `type` (split at 65535 bytes; `data` is not copied). */
  stream(type: number, requestId: number, data: Uint8Array): void {
    const records = (this.#records ??= []);
    const from = records.length;
    encodeStream(type, requestId, data, records);
    for (let i = from; i < records.length; i++) this.#bytes += records[i]!.length;
  }

  /** The queued records, in order; empties the queue. */
  take(): Uint8Array[] {
    const records = this.#records;
    if (records === undefined) return [];
    this.#records = undefined;
    this.#bytes = 0;
    return records;
  }
}

/** Size of the bodies of BEGIN_REQUEST and END_REQUEST. */
const FIXED_BODY_LENGTH = 8;

/**
 * The body of a record whose content must be read whole (BEGIN_REQUEST, END_REQUEST: 8 bytes),
 * gathered from the record's pieces. Bytes beyond the eighth are counted, not kept. A record that
 * came whole (nearly always) is read from the chunk itself; only one in pieces is copied, into
 * 8 bytes made the first time: an idle connection holds no buffer for this.
 */
export class FixedBody {
  #bytes: Uint8Array | undefined;
  /** The content's length so far. */
  length = 0;

  /**
   * Adds one piece. At the record's last piece returns its content, of which the first 8 bytes
   * count (read them at once: it may be a view of the chunk); before that, undefined.
   */
  add(content: Uint8Array, flags: number): Uint8Array | undefined {
    if (flags === PIECE_WHOLE) {
      this.length = content.length;
      return content;
    }
    if (flags & PIECE_START) this.length = 0;
    const room = FIXED_BODY_LENGTH - this.length;
    const bytes = (this.#bytes ??= new Uint8Array(FIXED_BODY_LENGTH));
    if (room > 0) bytes.set(content.length > room ? content.subarray(0, room) : content, this.length);
    this.length += content.length;
    return (flags & PIECE_END) !== 0 ? bytes : undefined;
  }

  /** Whether the record's content was exactly 8 bytes (ask once {@link add} returned the body). */
  get complete(): boolean {
    return this.length === FIXED_BODY_LENGTH;
  }
}

/** A management record is one record: no legitimate query or answer is refused by these. */
const MANAGEMENT_LIMITS: PairLimits = {
  maxNameLength: FCGI_MAX_CONTENT_LENGTH,
  maxValueLength: FCGI_MAX_CONTENT_LENGTH,
  maxTotalBytes: FCGI_MAX_CONTENT_LENGTH,
};

/** The name-value pairs of one management record (GET_VALUES, GET_VALUES_RESULT), from its pieces. */
export class ManagementPairs {
  #decoder: PairDecoder | null = null;
  #error: FastCGIError | null = null;

  /**
   * Adds one piece of the record. At its last piece returns its pairs, or the FastCGIError that
   * made them unreadable; before that, undefined.
   */
  add(content: Uint8Array, flags: number): Params | FastCGIError | undefined {
    if (flags & PIECE_START) {
      this.#decoder = new PairDecoder(MANAGEMENT_LIMITS);
      this.#error = null;
    }
    if (content.length > 0 && this.#error === null) {
      try {
        this.#decoder!.push(content);
      } catch (error) {
        this.#error = asFastCGIError(error);
      }
    }
    if (!(flags & PIECE_END)) return undefined;
    let pairs: Params | FastCGIError;
    if (this.#error !== null) pairs = this.#error;
    else {
      try {
        pairs = this.#decoder!.end();
      } catch (error) {
        pairs = asFastCGIError(error);
      }
    }
    this.clear();
    return pairs;
  }

  /** Drops the record in progress. */
  clear(): void {
    this.#decoder = null;
    this.#error = null;
  }
}

/** `error` itself when it is a FastCGIError (a protocol fault); anything else is a bug, rethrown. */
export function asFastCGIError(error: unknown): FastCGIError {
  if (error instanceof FastCGIError) return error;
  throw error;
}
