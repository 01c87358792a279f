// A scriptable FastCGI application for client tests: plain node:net (on Node, Deno and Bun),
// records parsed with the project's decoder, and every reply written by the test by hand, so a
// test can send what well-behaved applications never would (refusals, cut responses, bad bytes).
import { createServer, type Server, type Socket } from "node:net";
import { RecordDecoder } from "../../src/codec/decoder.ts";
import { encodeEndRequest, encodeGetValuesResult, encodeStream, encodeStreamEnd } from "../../src/codec/encode.ts";
import { PairDecoder } from "../../src/codec/pairs.ts";
import { PIECE_END, PIECE_START } from "../../src/codec/types.ts";
import { FCGI_KEEP_CONN, RecordType } from "../../src/protocol/constants.ts";
import type { SocketAddress } from "../../src/socket.ts";
import { concatBytes } from "../../src/bytes.ts";

const enc = new TextEncoder();

/** One request as the fake application saw it. */
export interface FakeRequest {
  readonly requestId: number;
  readonly role: number;
  readonly keepConn: boolean;
  readonly connection: FakeConnection;
  params: Record<string, string>;
  /** STDIN bytes so far. */
  stdin: Uint8Array[];
  stdinBytes: number;
  stdinEnded: boolean;
  data: Uint8Array[];
  dataEnded: boolean;
  aborted: boolean;
}

/** What the test does at each step; every hook is optional. */
export interface FakeAppHooks {
  /** BEGIN_REQUEST arrived (params not yet). */
  onBegin?(request: FakeRequest): void;
  /** PARAMS ended. */
  onParams?(request: FakeRequest): void;
  /** The empty STDIN record arrived (an Authorizer's request is complete at its params: see onParams). */
  onStdinEnd?(request: FakeRequest): void;
  /** A piece of STDIN arrived. */
  onStdin?(request: FakeRequest, piece: Uint8Array): void;
  /** The empty DATA record arrived. */
  onDataEnd?(request: FakeRequest): void;
  /** ABORT_REQUEST arrived. */
  onAbort?(request: FakeRequest): void;
  /** GET_VALUES arrived: return pairs to answer, or null to stay silent (default: MPXS_CONNS per `multiplex`). */
  onGetValues?(connection: FakeConnection): Array<[string, string]> | null;
  /** A new connection. */
  onConnection?(connection: FakeConnection): void;
}

/** One accepted connection. */
export class FakeConnection {
  readonly socket: Socket;
  readonly requests: Map<number, FakeRequest> = new Map();
  /** Every record type received, in order, with its requestId. */
  readonly received: Array<[number, number]> = [];
  closed = false;
  /** Requests begun on this connection over its life. */
  begun = 0;

  constructor(socket: Socket) {
    this.socket = socket;
  }

  write(bytes: Uint8Array | Uint8Array[]): void {
    if (this.closed) return;
    for (const b of Array.isArray(bytes) ? bytes : [bytes]) this.socket.write(b);
  }

  /** STDOUT records with `body` (not ended). */
  stdout(requestId: number, body: string | Uint8Array): void {
    const out: Uint8Array[] = [];
    encodeStream(RecordType.STDOUT, requestId, typeof body === "string" ? enc.encode(body) : body, out);
    this.write(out);
  }

  stderr(requestId: number, text: string): void {
    const out: Uint8Array[] = [];
    encodeStream(RecordType.STDERR, requestId, enc.encode(text), out);
    this.write(out);
  }

  /** The empty STDOUT record and END_REQUEST; closes the connection when the request had no FCGI_KEEP_CONN. */
  end(requestId: number, appStatus = 0, protocolStatus = 0): void {
    const request = this.requests.get(requestId);
    this.write([encodeStreamEnd(RecordType.STDOUT, requestId), encodeEndRequest(requestId, appStatus, protocolStatus)]);
    this.requests.delete(requestId);
    if (request && !request.keepConn) this.socket.end();
  }

  /** A whole CGI response and END_REQUEST. */
  respond(requestId: number, cgi: string | Uint8Array): void {
    this.stdout(requestId, cgi);
    this.end(requestId);
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }
}

/** A running fake application. */
export interface FakeApp {
  readonly address: SocketAddress;
  readonly connections: FakeConnection[];
  /** Connections open now. */
  open(): number;
  close(): Promise<void>;
}

/**
 * Starts a fake application on 127.0.0.1 (`port`, or a free one). `multiplex` is what GET_VALUES
 * answers by default.
 */
export async function startFakeApp(hooks: FakeAppHooks, multiplex = false, port = 0): Promise<FakeApp> {
  const connections: FakeConnection[] = [];
  const server: Server = createServer((socket) => {
    const connection = new FakeConnection(socket);
    connections.push(connection);
    socket.on("close", () => (connection.closed = true));
    socket.on("error", () => {});
    hooks.onConnection?.(connection);
    const decoder = new RecordDecoder();
    let parts: Uint8Array[] = [];
    let length = 0;
    socket.on("data", (chunk: Buffer) => {
      try {
        decoder.decode(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length), (type, requestId, content, flags) => {
          if (flags & PIECE_START) {
            parts = [];
            length = 0;
          }
          length += content.length;
          if (type === RecordType.STDIN && content.length > 0) {
            const request = connection.requests.get(requestId);
            if (request && !request.stdinEnded) {
              const copy = content.slice();
              request.stdin.push(copy);
              request.stdinBytes += copy.length;
              hooks.onStdin?.(request, copy);
            }
          } else {
            parts.push(content.slice());
          }
          if (!(flags & PIECE_END)) return;
          connection.received.push([type, requestId]);
          // STDIN content went to the request piece by piece; only the empty record ends the stream.
          if (type === RecordType.STDIN && length > 0) return;
          record(connection, type, requestId, concatBytes(parts));
        });
      } catch {
        socket.destroy();
      }
    });
  });

  function record(connection: FakeConnection, type: number, requestId: number, content: Uint8Array): void {
    const request = connection.requests.get(requestId);
    switch (type) {
      case RecordType.BEGIN_REQUEST: {
        const fresh: FakeRequest = {
          requestId,
          role: (content[0]! << 8) | content[1]!,
          keepConn: (content[2]! & FCGI_KEEP_CONN) !== 0,
          connection,
          params: {},
          stdin: [],
          stdinBytes: 0,
          stdinEnded: false,
          data: [],
          dataEnded: false,
          aborted: false,
        };
        (fresh as { pairs?: PairDecoder }).pairs = new PairDecoder();
        connection.requests.set(requestId, fresh);
        connection.begun++;
        hooks.onBegin?.(fresh);
        return;
      }
      case RecordType.PARAMS: {
        const pairs = (request as { pairs?: PairDecoder } | undefined)?.pairs;
        if (!request || !pairs) return;
        if (content.length > 0) return pairs.push(content);
        request.params = pairs.end().toObject();
        (request as { pairs?: PairDecoder }).pairs = undefined;
        hooks.onParams?.(request);
        return;
      }
      case RecordType.STDIN:
        if (request && content.length === 0 && !request.stdinEnded) {
          request.stdinEnded = true;
          hooks.onStdinEnd?.(request);
        }
        return;
      case RecordType.DATA:
        if (!request) return;
        if (content.length > 0) request.data.push(content);
        else if (!request.dataEnded) {
          request.dataEnded = true;
          hooks.onDataEnd?.(request);
        }
        return;
      case RecordType.ABORT_REQUEST:
        if (request && !request.aborted) {
          request.aborted = true;
          hooks.onAbort?.(request);
        }
        return;
      case RecordType.GET_VALUES: {
        const answer = hooks.onGetValues ? hooks.onGetValues(connection) : [["FCGI_MPXS_CONNS", multiplex ? "1" : "0"]] as Array<[string, string]>;
        if (answer !== null) connection.write(encodeGetValuesResult(answer));
        return;
      }
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const bound = server.address();
  return {
    address: { transport: "tcp", hostname: "127.0.0.1", port: typeof bound === "object" && bound !== null ? bound.port : 0 },
    connections,
    open: () => connections.filter((c) => !c.closed).length,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.destroy();
        server.close(() => resolve());
      }),
  };
}

