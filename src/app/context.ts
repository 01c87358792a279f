/**
 * The context object handed to handlers beside the Request: params, role, addresses, the
 * STDERR writer, and the Filter role's DATA stream. Fields are computed on first access.
 * @module
 */
import type { Params } from "../codec/pairs.ts";
import type { Role } from "../protocol/constants.ts";
import type { InputBody } from "./body.ts";
import type { RequestContext, SocketInfo, StderrWriter } from "./types.ts";

const textEncoder = new TextEncoder();

/** What the context needs from the request it describes. */
export interface ContextSource {
  readonly params: Params;
  readonly role: number;
  readonly requestId: number;
  readonly keepConn: boolean;
  readonly socket: SocketInfo;
  readonly data: InputBody | null;
  /** Queues STDERR bytes (dropped once the request has ended). */
  writeStderr(bytes: Uint8Array): void;
  /** The request's abort signal. */
  signal(): AbortSignal;
}

function toPort(value: string | undefined, fallback: number): number {
  if (value === undefined || !/^[0-9]{1,5}$/.test(value)) return fallback;
  return Number(value);
}

function toNumber(value: string | undefined): number | undefined {
  if (value === undefined || !/^[0-9]{1,16}$/.test(value)) return undefined;
  return Number(value);
}

/** The {@link RequestContext} of one request. */
export class Context implements RequestContext {
  readonly #source: ContextSource;
  #stderr: StderrWriter | undefined;

  constructor(source: ContextSource) {
    this.#source = source;
  }

  get params(): Params {
    return this.#source.params;
  }

  get role(): Role {
    return this.#source.role as Role;
  }

  get requestId(): number {
    return this.#source.requestId;
  }

  get keepConn(): boolean {
    return this.#source.keepConn;
  }

  get remoteAddress(): string {
    return this.#source.params.get("REMOTE_ADDR") || this.#source.socket.remoteAddress;
  }

  get remotePort(): number {
    return toPort(this.#source.params.get("REMOTE_PORT"), this.#source.socket.remotePort);
  }

  get serverAddress(): string {
    return this.#source.params.get("SERVER_ADDR") || this.#source.socket.localAddress;
  }

  get serverPort(): number {
    return toPort(this.#source.params.get("SERVER_PORT"), this.#source.socket.localPort);
  }

  get socket(): SocketInfo {
    return this.#source.socket;
  }

  get stderr(): StderrWriter {
    return (this.#stderr ??= stderrWriter(this.#source));
  }

  get data(): ReadableStream<Uint8Array> | null {
    return this.#source.data?.stream() ?? null;
  }

  get dataLength(): number | undefined {
    return toNumber(this.#source.params.get("FCGI_DATA_LENGTH"));
  }

  get dataLastModified(): Date | undefined {
    const seconds = toNumber(this.#source.params.get("FCGI_DATA_LAST_MOD"));
    return seconds === undefined ? undefined : new Date(seconds * 1000);
  }

  get signal(): AbortSignal {
    return this.#source.signal();
  }
}

function stderrWriter(source: ContextSource): StderrWriter {
  const write = (data: string | Uint8Array): void => {
    const bytes = typeof data === "string" ? textEncoder.encode(data) : data;
    // The core sends these bytes later; a caller may reuse its buffer, so keep a copy.
    if (bytes.byteLength > 0) source.writeStderr(typeof data === "string" ? bytes : bytes.slice());
  };
  let writable: WritableStream<string | Uint8Array> | undefined;
  return {
    write,
    get writable() {
      return (writable ??= new WritableStream<string | Uint8Array>({ write }));
    },
  };
}
