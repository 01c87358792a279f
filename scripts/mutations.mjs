// The deliberate breakages `npm run mutate` (scripts/mutate.mjs) applies, one at a time, to a
// temporary copy of the repository. Each names the test files that must fail once it is applied;
// a breakage they all pass is a hole in the tests (see test/MUTATIONS.md for the last result).
//
// Fields:
//   id       short unique name (for --only)
//   file     the file to break, relative to the repository root
//   find     a literal string that must occur exactly once in `file` (else the run stops, naming
//            the mutation: the list cannot go stale silently when the code changes)
//   replace  what `find` becomes
//   tests    the test files, at least one of which must fail
//   why      what the breakage undoes, in a few words
//   note     optional: what is known about why the tests miss it, shown in the report while they do
//   build    optional: "wasm" rebuilds src/codec/wasm_module.generated.ts from wasm/ after applying
//            (for breakages of the AssemblyScript codec, which the source embeds as base64)

/** @type {Array<{ id: string, file: string, find: string, replace: string, tests: string[], why: string, note?: string, build?: "wasm" }>} */
export const mutations = [
  // ---- gateway path safety ---------------------------------------------------------------------
  {
    id: "gateway-dotdot",
    file: "src/client/gateway.ts",
    find: `for (const s of segments) if (s === "." || s === "..") return null;`,
    replace: `for (const s of segments) if (s === ".") return null;`,
    tests: ["test/gateway_paths.test.ts"],
    why: "a `..` segment (or `%2e%2e`) is no longer refused with 400",
  },
  {
    id: "gateway-dot",
    file: "src/client/gateway.ts",
    find: `for (const s of segments) if (s === "." || s === "..") return null;`,
    replace: `for (const s of segments) if (s === "..") return null;`,
    tests: ["test/gateway_paths.test.ts"],
    why: "a `.` segment (or `%2e`) is no longer refused with 400",
  },
  {
    id: "gateway-backslash",
    file: "src/client/gateway.ts",
    find: `/[\\0\\r\\n\\\\]/.test(path)) return null;`,
    replace: `/[\\0\\r\\n]/.test(path)) return null;`,
    tests: ["test/gateway_paths.test.ts"],
    why: "a backslash in the decoded path (a separator on Windows backends) is let through",
  },
  {
    id: "gateway-nul",
    file: "src/client/gateway.ts",
    find: `/[\\0\\r\\n\\\\]/.test(path)) return null;`,
    replace: `/[\\r\\n\\\\]/.test(path)) return null;`,
    tests: ["test/gateway_paths.test.ts"],
    why: "a NUL (`%00`) in the decoded path is let through",
  },
  {
    id: "gateway-crlf",
    file: "src/client/gateway.ts",
    find: `/[\\0\\r\\n\\\\]/.test(path)) return null;`,
    replace: `/[\\0\\\\]/.test(path)) return null;`,
    tests: ["test/gateway_paths.test.ts"],
    why: "CR/LF (`%0a`, the CVE-2019-11043 PATH_INFO split) in the decoded path is let through",
  },
  {
    id: "gateway-encoded-slash",
    file: "src/client/gateway.ts",
    find: `if (/%2f/i.test(pathname)) return null;`,
    replace: `if (/%2f/.test(pathname)) return null;`,
    tests: ["test/gateway_paths.test.ts"],
    why: "an upper-case encoded slash `%2F` is let through (one segment becomes two)",
  },
  {
    id: "gateway-script-exists",
    file: "src/client/gateway.ts",
    find: `if (found === null || !found.isFile) return answer(404, "Not Found");`,
    replace: `if (false) return answer(404, "Not Found");`,
    tests: ["test/gateway_paths.test.ts", "test/gateway_phpfpm.test.ts"],
    why: "a script name that is no existing file is sent anyway (/uploads/evil.jpg/x.php reaches PHP)",
  },
  {
    id: "gateway-realpath",
    file: "src/client/gateway.ts",
    find: `if (real !== realRoot && !real.startsWith(realRoot.endsWith(sep) ? realRoot : realRoot + sep)) return null;`,
    replace: `if (false) return null;`,
    tests: ["test/gateway_paths.test.ts", "test/gateway_phpfpm.test.ts"],
    why: "a symlink under the root to a file outside it is followed (out.php runs the outside script)",
  },

  // ---- params limits and timeouts ----------------------------------------------------------------
  {
    id: "params-max-length-64k",
    file: "src/codec/pairs.ts",
    find: `limit(limits.maxValueLength, DEFAULT_MAX_VALUE_LENGTH, "maxValueLength"), MAX_LENGTH);`,
    replace: `limit(limits.maxValueLength, DEFAULT_MAX_VALUE_LENGTH, "maxValueLength"), 65536);`,
    tests: ["test/serve_known_bad.test.ts", "test/serve_limits.test.ts"],
    why: "value limits are silently capped at 64 KiB (maxParamsBytes: Infinity no longer means it)",
  },
  {
    id: "serve-max-params-bytes",
    file: "src/app/connection.ts",
    find: `pairLimits: { maxTotalBytes: options.maxParamsBytes, maxValueLength: options.maxParamsBytes },`,
    replace: `pairLimits: { maxTotalBytes: Infinity, maxValueLength: options.maxParamsBytes },`,
    tests: ["test/serve_limits.test.ts", "test/serve_known_bad.test.ts"],
    why: "serve() no longer bounds the PARAMS stream by maxParamsBytes (an endless stream of small pairs grows)",
  },
  {
    id: "serve-params-timeout",
    file: "src/app/connection.ts",
    find: `    });\n    this.#setDeadline("params");\n  }`,
    replace: `    });\n  }`,
    tests: ["test/serve_limits.test.ts", "test/serve_known_bad.test.ts"],
    why: "a new connection gets no paramsTimeout deadline (half-open connections are held forever)",
  },
  {
    id: "codec-params-total",
    file: "src/codec/pairs.ts",
    find: `if (base + length > this.#maxTotalBytes) {`,
    replace: `if (base + length >= this.#maxTotalBytes) {`,
    tests: ["test/codec_known_bad.test.ts", "test/protocol_app_badinput.test.ts", "test/serve_limits.test.ts"],
    why: "a PARAMS stream of exactly maxTotalBytes is refused (off by one at the limit)",
    // (Removing this check outright is nearly equivalent: the WASM scanner refuses every pair that
    // would end past maxTotalBytes, so only a stream ending in a few length bytes past the limit
    // would differ. The boundary is what this check alone decides.)
  },
  {
    id: "codec-pair-truncated",
    file: "src/codec/pairs.ts",
    find: `if (this.#phase !== PAIR_PHASE_NAME_LENGTH) {\n      this.#fail("PAIR_TRUNCATED"`,
    replace: `if (false) {\n      this.#fail("PAIR_TRUNCATED"`,
    tests: ["test/codec_known_bad.test.ts", "test/protocol_app_badinput.test.ts"],
    why: "a PARAMS stream that ends inside a pair is accepted (no PAIR_TRUNCATED)",
  },

  // ---- codec (WebAssembly, rebuilt from wasm/, and its JS side) ------------------------------------
  {
    id: "wasm-bad-version",
    file: "wasm/records.ts",
    find: `if (load<u8>(h) != FCGI_VERSION_1) { stop(SCAN_BAD_VERSION`,
    replace: `if (false) { stop(SCAN_BAD_VERSION`,
    tests: ["test/codec_known_bad.test.ts", "test/protocol_app_badinput.test.ts"],
    why: "the record scanner accepts any version byte",
    build: "wasm",
  },
  {
    id: "wasm-name-too-long",
    file: "wasm/pairs.ts",
    find: `if (nameLength > maxNameLength) return PAIR_NAME_TOO_LONG;`,
    replace: `if (false) return PAIR_NAME_TOO_LONG;`,
    tests: ["test/codec_known_bad.test.ts"],
    why: "the pair scanner no longer checks a name's length against maxNameLength",
    build: "wasm",
  },
  {
    id: "wasm-pair-sum-wraps",
    file: "wasm/pairs.ts",
    find: `if (<f64>nameOffset + <f64>nameLength + <f64>valueLength > maxTotalBytes) return PAIR_PARAMS_TOO_LARGE;`,
    replace: `if (<f64>(nameOffset + nameLength + valueLength) > maxTotalBytes) return PAIR_PARAMS_TOO_LARGE;`,
    tests: ["test/codec_known_bad.test.ts", "test/protocol_app_badinput.test.ts"],
    why: "the total check adds lengths near 2^31 in 32 bits, which wraps around (libfcgi CVE-2025-23016)",
    build: "wasm",
  },
  {
    id: "wasm-length-byte-0x80",
    file: "wasm/pairs.ts",
    find: `if (b < 0x80) { nameLength = b; i += 1; }`,
    replace: `if (b <= 0x80) { nameLength = b; i += 1; }`,
    tests: ["test/codec_known_bad.test.ts", "test/codec_pairs.test.ts"],
    why: "a name length byte of exactly 0x80 is read as a one-byte length instead of starting a four-byte one",
    build: "wasm",
  },
  {
    id: "codec-bad-version-throw",
    file: "src/codec/decoder.ts",
    find: `if (status === SCAN_BAD_VERSION) {`,
    replace: `if (false) {`,
    tests: ["test/codec_known_bad.test.ts", "test/protocol_app_badinput.test.ts", "test/serve_limits.test.ts"],
    why: "a bad version byte found by the scanner ends the chunk silently instead of failing the decoder",
  },
  {
    id: "codec-long-record-version",
    file: "src/codec/decoder.ts",
    find: `while (length - pos >= FCGI_HEADER_LEN && chunk[pos] === FCGI_VERSION_1) {`,
    replace: `while (length - pos >= FCGI_HEADER_LEN) {`,
    tests: ["test/codec_known_bad.test.ts", "test/codec_records.test.ts"],
    why: "the JS fast path for long records no longer checks the version byte",
  },
  {
    id: "encode-pair-length-128",
    file: "src/codec/encode.ts",
    find: `    if (nameLength < 128) out[at++] = nameLength;`,
    replace: `    if (nameLength <= 128) out[at++] = nameLength;`,
    tests: ["test/codec_known_bad.test.ts", "test/client_params.test.ts", "test/codec_encode.test.ts"],
    why: "the pair encoder writes a 128-byte name's length in one byte (0x80 starts a four-byte length)",
  },

  // ---- backpressure -------------------------------------------------------------------------------
  {
    id: "app-input-pause",
    file: "src/app/connection.ts",
    find: `if (pause) this.#connection.pause();`,
    replace: `if (pause) void 0;`,
    tests: ["test/serve_flow.test.ts"],
    why: "the application never stops reading a socket whose request does not read its body",
  },
  {
    id: "app-output-drain",
    file: "src/app/task.ts",
    find: `        const wait = this.#host.writable();\n        if (wait) await wait;\n`,
    replace: ``,
    tests: ["test/serve_flow.test.ts"],
    why: "a streamed response is pulled from the handler without waiting for the socket to drain",
  },
  {
    id: "client-input-drain",
    file: "src/client/input.ts",
    find: `if (!socket.writable) await socket.drained();`,
    replace: ``,
    tests: ["test/client_pool.test.ts"],
    why: "the client streams a request body without waiting for the backend socket to drain",
  },
  {
    id: "client-output-pause",
    file: "src/client/socket.ts",
    find: `    if (pause) connection.pause();\n    else connection.resume();`,
    replace: `    if (!pause) connection.resume();`,
    tests: ["test/client_pool.test.ts"],
    why: "the client never stops reading a backend socket whose response nobody reads",
  },
  {
    id: "client-max-response-buffer",
    file: "src/client/response_body.ts",
    find: `> this.#maxResponseBuffer) this.#overflow();`,
    replace: `> this.#maxResponseBuffer) void 0;`,
    tests: ["test/client_pool.test.ts"],
    why: "an unread response on a multiplexed connection buffers without bound",
  },
  {
    id: "node-http-output-drain",
    file: "src/runtime/node_http.ts",
    find: `      if (!send(step.value)) await drained(res);`,
    replace: `      send(step.value);`,
    tests: ["test/node_http.test.ts"],
    why: "toNodeHandler pulls the response body without waiting for the HTTP client to read",
  },
  {
    id: "node-http-truncated-ends",
    file: "src/runtime/node_http.ts",
    find: `    res.destroy(error instanceof Error ? error : new Error(String(error)));`,
    replace: `    res.end();`,
    tests: ["test/node_http.test.ts"],
    why: "a response body that fails after the head went out is ended as if complete instead of cutting the connection",
  },
  {
    id: "client-one-per-socket",
    file: "src/client/pool.ts",
    find: `const MAX_PER_SOCKET = 0xffff;`,
    replace: `const MAX_PER_SOCKET = 1;`,
    tests: ["test/client_multiplex.test.ts"],
    why: "a multiplexed connection carries one request at a time, so a slow request stalls the fast ones queued behind it",
  },

  // ---- response headers ---------------------------------------------------------------------------
  {
    id: "cgi-header-crlf",
    file: "src/app/cgi.ts",
    find: `const BAD_VALUE = /[\\0\\r\\n]|[^\\0-\\xff]/;`,
    replace: `const BAD_VALUE = /[^\\0-\\xff]/;`,
    tests: ["test/serve_responder.test.ts", "test/serve_objects.test.ts"],
    why: "a response header value with CR, LF or NUL is written to the web server (header injection)",
  },
  {
    id: "cgi-header-name",
    file: "src/app/cgi.ts",
    find: `if (!TOKEN.test(name)) throw new CgiHeaderError(`,
    replace: `if (false) throw new CgiHeaderError(`,
    tests: ["test/serve_objects.test.ts"],
    why: "a response header name that is no HTTP token (a space, a colon) is written as is",
  },
  {
    id: "client-cgi-bare-cr",
    file: "src/client/cgi_response.ts",
    find: `if (line.includes("\\r")) throw bad(`,
    replace: `if (false) throw bad(`,
    tests: ["test/client_cgi_response.test.ts"],
    why: "the client accepts a CGI header line from the backend with a bare CR",
  },

  // ---- abort ----------------------------------------------------------------------------------------
  {
    id: "app-abort-task",
    file: "src/app/connection.ts",
    find: `if (task) task.abort(new FastCGIError("ABORTED", "the web server aborted the request (ABORT_REQUEST)"`,
    replace: `if (false) task.abort(new FastCGIError("ABORTED", "the web server aborted the request (ABORT_REQUEST)"`,
    tests: ["test/serve_flow.test.ts", "test/serve_known_bad.test.ts"],
    why: "ABORT_REQUEST neither fires the request's signal nor ends the request",
  },
  {
    id: "core-abort-event",
    file: "src/protocol/app_connection.ts",
    find: `    if (request.phase === RequestPhase.PARAMS) return this.#reject(request, "ABORT_REQUEST before PARAMS ended");\n    this.#abort(request);`,
    replace: `    if (request.phase === RequestPhase.PARAMS) return this.#reject(request, "ABORT_REQUEST before PARAMS ended");`,
    tests: ["test/protocol_app_core.test.ts", "test/serve_flow.test.ts"],
    why: "the sans-IO core drops ABORT_REQUEST for an active request (no abort event)",
  },
  {
    id: "client-abort-record",
    file: "src/client/socket.ts",
    find: `    this.core.abort(requestId);\n`,
    replace: ``,
    tests: ["test/client_pool.test.ts"],
    why: "a client request given up on (abort, timeout, bad response) sends no ABORT_REQUEST",
  },

  // ---- FCGI_KEEP_CONN ---------------------------------------------------------------------------------
  {
    id: "keepconn-clear-closes",
    file: "src/protocol/app_connection.ts",
    find: `    this.#output.push(encodeEndRequest(requestId, appStatus >>> 0, protocolStatus & 0xff));\n    if (!request.keepConn) this.#closeWhenIdle = true;`,
    replace: `    this.#output.push(encodeEndRequest(requestId, appStatus >>> 0, protocolStatus & 0xff));`,
    tests: ["test/serve_responder.test.ts", "test/protocol_app_core.test.ts"],
    why: "a request begun without FCGI_KEEP_CONN no longer closes the connection after END_REQUEST",
  },
  {
    id: "keepconn-flag-bit",
    file: "src/protocol/app_connection.ts",
    find: `const keepConn = (body[2]! & FCGI_KEEP_CONN) !== 0;`,
    replace: `const keepConn = body[2]! !== 0;`,
    tests: ["test/protocol_app_core.test.ts"],
    why: "any flags bit, not bit 0 alone, counts as FCGI_KEEP_CONN",
  },
  {
    id: "keepconn-set-kept",
    file: "src/protocol/app_connection.ts",
    find: `const keepConn = (body[2]! & FCGI_KEEP_CONN) !== 0;`,
    replace: `const keepConn = false;`,
    tests: ["test/serve_responder.test.ts", "test/protocol_app_core.test.ts"],
    why: "FCGI_KEEP_CONN is ignored: every connection is closed after its request",
  },
  {
    id: "client-keepconn-always",
    file: "src/protocol/client_connection.ts",
    find: `encodeBeginRequest(requestId, role, keepConn ? FCGI_KEEP_CONN : 0)`,
    replace: `encodeBeginRequest(requestId, role, FCGI_KEEP_CONN)`,
    tests: ["test/client_pool.test.ts", "test/client_connection.test.ts"],
    why: "the client sets FCGI_KEEP_CONN even when told not to keep connections",
  },

  // ---- httpoxy ---------------------------------------------------------------------------------------
  {
    id: "httpoxy-client-proxy-header",
    file: "src/client/params.ts",
    find: `name === "content-length" || name === "proxy" || name.includes("_")`,
    replace: `name === "content-length" || name.includes("_")`,
    tests: ["test/client_params.test.ts"],
    why: "a `Proxy:` request header becomes HTTP_PROXY in the params (httpoxy)",
  },
  {
    id: "httpoxy-app-env",
    file: "src/app/task.ts",
    find: `      const url = requestURL(this.params);`,
    replace: `      for (const [name, value] of this.params) if (name.startsWith("HTTP_")) (globalThis as unknown as { process: { env: Record<string, string> } }).process.env[name] = value;\n      const url = requestURL(this.params);`,
    tests: ["test/serve_responder.test.ts"],
    why: "request params are copied into the process environment, as CGI does (httpoxy: HTTP_PROXY)",
  },

  // ---- allow-list, connection and request limits -----------------------------------------------------
  {
    id: "allow-list-ignored",
    file: "src/app/serve.ts",
    find: `if (this.#allow && peer !== "" && !this.#allow.allows(peer)) {`,
    replace: `if (false) {`,
    tests: ["test/serve_limits.test.ts"],
    why: "serve() admits web servers that are not in the allow-list",
  },
  {
    id: "allow-list-env",
    file: "src/app/serve.ts",
    find: `host.env("FCGI_WEB_SERVER_ADDRS");`,
    replace: `host.env("FCGI_WEB_SERVER_ADDRS_UNUSED");`,
    tests: ["test/serve_limits.test.ts"],
    why: "FCGI_WEB_SERVER_ADDRS in the environment is no longer the default allow-list",
  },
  {
    id: "layers-app-imports-client",
    file: "src/app/serve.ts",
    find: `import { detectAdapter, getRuntime } from "../runtime/index.ts";`,
    replace: `import { detectAdapter, getRuntime } from "../runtime/index.ts";\nimport type { ClientOptions } from "../client/client.ts";`,
    tests: ["test/layers.test.ts"],
    why: "the app layer imports the client layer, which the README's Layout table does not allow",
  },
  {
    id: "layers-runtime-check-outside",
    file: "src/app/serve.ts",
    find: `import { detectAdapter, getRuntime } from "../runtime/index.ts";`,
    replace: `import { detectAdapter, getRuntime } from "../runtime/index.ts";\nconst onDeno = typeof Deno !== "undefined";`,
    tests: ["test/layers.test.ts"],
    why: "the app layer asks which runtime it is on instead of asking its adapter",
  },
  {
    id: "allow-list-mapped-v4",
    file: "src/address.ts",
    find: `if (mapped) return this.#v4.some((r) => matches(r, mapped));`,
    replace: `if (mapped) return true;`,
    tests: ["test/address.test.ts"],
    why: "any IPv4-mapped IPv6 peer (::ffff:a.b.c.d) is admitted, listed or not",
  },
  {
    id: "allow-list-prefix-bits",
    file: "src/address.ts",
    find: `const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;`,
    replace: `const mask = 0xff;`,
    tests: ["test/address.test.ts"],
    why: "a CIDR prefix that is not a multiple of 8 compares its last byte whole",
  },
  {
    id: "max-connections-off-by-one",
    file: "src/app/serve.ts",
    find: `if (this.#sockets.size >= this.options.maxConnections) {`,
    replace: `if (this.#sockets.size > this.options.maxConnections) {`,
    tests: ["test/serve_limits.test.ts"],
    why: "serve() admits one connection more than maxConnections",
  },
  {
    id: "max-requests-off-by-one",
    file: "src/app/serve.ts",
    find: `if (this.#requests >= this.options.maxRequests) {`,
    replace: `if (this.#requests > this.options.maxRequests) {`,
    tests: ["test/serve_limits.test.ts"],
    why: "serve() runs one request more than maxRequests before answering OVERLOADED",
  },
  {
    id: "max-requests-leak",
    file: "src/app/serve.ts",
    find: `  release(): void {\n    this.#requests--;\n  }`,
    replace: `  release(): void {}`,
    tests: ["test/serve_limits.test.ts", "test/serve_known_bad.test.ts"],
    why: "a finished or aborted request never gives its maxRequests slot back",
  },
  // ---- process manager ---------------------------------------------------------------------------
  {
    id: "manager-no-replace",
    file: "src/manager/pool.ts",
    find: "      if (worker.slot <= desired) scheduleStart(worker.slot, delay);",
    replace: "",
    tests: ["test/interop/nginx_workers.test.ts"],
    why: "a worker that crashed or was killed is no longer replaced",
  },
  {
    id: "manager-reload-kills-old",
    file: "src/manager/pool.ts",
    find: "    worker.process.kill(\"SIGTERM\");\n    // Its own --close-timeout ends the drain",
    replace: "    worker.process.kill(\"SIGKILL\");\n    // Its own --close-timeout ends the drain",
    tests: ["test/interop/nginx_workers.test.ts"],
    why: "a reloaded, recycled or stopped worker is killed instead of draining its in-flight requests",
  },
  {
    id: "manager-no-heartbeat-kill",
    file: "src/manager/pool.ts",
    find: "      if (silent <= heartbeatTimeout) continue;",
    replace: "      if (silent <= heartbeatTimeout || true) continue;",
    tests: ["test/interop/nginx_workers.test.ts"],
    why: "a worker whose event loop is blocked past the timeout is no longer killed",
  },
  {
    id: "manager-no-backoff",
    file: "src/manager/policy.ts",
    find: "  if (failures <= 0) return 0;",
    replace: "  if (failures <= 0 || true) return 0;",
    tests: ["test/manager_policy.test.ts", "test/interop/nginx_workers.test.ts"],
    why: "a crash loop restarts at once instead of backing off",
  },
];
