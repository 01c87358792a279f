// The reference record decoder: FastCGI spec section 3.3 read byte by byte, with no cleverness, so
// the WASM RecordDecoder can be held to it. Tests only; it makes the same handler calls the
// RecordHandler contract in src/codec/types.ts describes.
import { FastCGIError } from "../../src/errors.ts";
import { PIECE_END, PIECE_START, type RecordHandler } from "../../src/codec/types.ts";

const HEADER = 0;
const CONTENT = 1;
const PADDING = 2;
const FAILED = 3;

/**
 * Decodes a byte stream into records, one chunk at a time, like RecordDecoder.
 *
 * Per (record × chunk) it delivers at most one content piece, a view of the chunk; the first
 * piece of a record carries PIECE_START, the one holding its last content byte PIECE_END.
 * An empty record is one empty piece, delivered once its header is complete.
 */
export class OracleRecordDecoder {
  private phase = HEADER;
  private readonly head = new Uint8Array(8);
  private headFill = 0;
  private type = 0;
  private requestId = 0;
  private contentLeft = 0;
  private paddingLeft = 0;
  private started = false;
  private failure: FastCGIError | undefined;

  /** True between records: no header byte, content or padding pending. */
  get idle(): boolean {
    return this.phase === HEADER && this.headFill === 0;
  }

  /** Feeds one chunk; calls `onRecord` per content piece; throws BAD_VERSION (and keeps throwing). */
  decode(chunk: Uint8Array, onRecord: RecordHandler): void {
    if (this.failure !== undefined) throw this.failure;
    let at = 0;
    while (at < chunk.length) {
      if (this.phase === HEADER) {
        this.head[this.headFill++] = chunk[at++]!;
        if (this.headFill < 8) continue;
        this.headFill = 0;
        this.startRecord(onRecord);
      } else if (this.phase === CONTENT) {
        const n = Math.min(this.contentLeft, chunk.length - at);
        this.contentLeft -= n;
        const flags = (this.started ? 0 : PIECE_START) | (this.contentLeft === 0 ? PIECE_END : 0);
        this.started = true;
        onRecord(this.type, this.requestId, chunk.subarray(at, at + n), flags);
        at += n;
        if (this.contentLeft === 0) this.phase = this.paddingLeft > 0 ? PADDING : HEADER;
      } else {
        // PADDING: skipped, never delivered.
        const n = Math.min(this.paddingLeft, chunk.length - at);
        this.paddingLeft -= n;
        at += n;
        if (this.paddingLeft === 0) this.phase = HEADER;
      }
    }
  }

  private startRecord(onRecord: RecordHandler): void {
    const h = this.head;
    if (h[0] !== 1) {
      this.phase = FAILED;
      this.failure = new FastCGIError("BAD_VERSION", `oracle: record version ${h[0]}, expected 1`);
      throw this.failure;
    }
    this.type = h[1]!;
    this.requestId = (h[2]! << 8) | h[3]!;
    this.contentLeft = (h[4]! << 8) | h[5]!;
    this.paddingLeft = h[6]!;
    this.started = false;
    if (this.contentLeft > 0) {
      this.phase = CONTENT;
      return;
    }
    this.phase = this.paddingLeft > 0 ? PADDING : HEADER;
    onRecord(this.type, this.requestId, new Uint8Array(0), PIECE_START | PIECE_END);
  }
}
