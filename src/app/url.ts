/**
 * The request URL rebuilt from CGI params: scheme, host and the raw request target, with the
 * bytes a URL parser would reinterpret percent-encoded so the path reaches the handler intact.
 * @module
 */

/** The params the URL is built from; a structural view of the codec's Params. */
export interface ParamSource {
  get(name: string): string | undefined;
}

// Which bytes of a raw request target are percent-encoded before URL parsing: controls, space,
// bytes >= 0x7F (params are latin1 strings of the raw bytes; URL would re-encode them as UTF-8),
// '#' (a fragment has no place in a request target, and would drop the rest), '\' (URL reads it
// as '/' in http(s) URLs) and the characters URL would encode anyway.
const RAW_UNSAFE = new Uint8Array(256);
for (let c = 0; c <= 0x20; c++) RAW_UNSAFE[c] = 1;
for (let c = 0x7f; c <= 0xff; c++) RAW_UNSAFE[c] = 1;
for (const ch of "\"#<>\\^`{|}") RAW_UNSAFE[ch.charCodeAt(0)] = 1;
// Decoded parts (SCRIPT_NAME, PATH_INFO) also need '%' and '?' encoded to keep their meaning.
const DECODED_UNSAFE = RAW_UNSAFE.slice();
DECODED_UNSAFE[0x25] = 1;
DECODED_UNSAFE[0x3f] = 1;

const HEX = "0123456789ABCDEF";

function encodeUnsafe(text: string, unsafe: Uint8Array): string {
  let i = 0;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff || unsafe[c]) break;
  }
  if (i === text.length) return text;
  let out = text.slice(0, i);
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) {
      // Params decode as latin1, so this only happens for strings built elsewhere: encode as UTF-8.
      out += encodeURIComponent(String.fromCharCode(c));
    } else if (unsafe[c]) {
      out += "%" + HEX[c >> 4] + HEX[c & 15];
    } else {
      out += text[i];
    }
  }
  return out;
}

// A Host header value that is safe to put between "//" and the path: reg-name, IPv4, [IPv6],
// optional port. Anything else ("evil.com/x", "a@b", spaces) would change what the URL means.
const HOST = /^(?:[A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?$/;

function hostFrom(params: ParamSource, https: boolean): string {
  const host = params.get("HTTP_HOST");
  if (host !== undefined && HOST.test(host)) return host;
  let name = params.get("SERVER_NAME") ?? "";
  // SERVER_NAME may be a bare IPv6 address.
  if (name.includes(":") && !name.startsWith("[")) name = `[${name}]`;
  if (name === "" || !HOST.test(name)) name = "localhost";
  const port = params.get("SERVER_PORT");
  if (port && /^[0-9]{1,5}$/.test(port) && port !== (https ? "443" : "80")) return `${name}:${port}`;
  return name;
}

/** True when the params say the client spoke HTTPS (HTTPS=on, or REQUEST_SCHEME=https). */
export function isHttps(params: ParamSource): boolean {
  const https = params.get("HTTPS");
  if (https !== undefined && https !== "" && https.toLowerCase() !== "off" && https !== "0") return true;
  return params.get("REQUEST_SCHEME")?.toLowerCase() === "https";
}

/**
 * The absolute URL of a request, as `Request.url` would serialize it.
 *
 * The path comes from REQUEST_URI (the raw request target) when present, else from
 * SCRIPT_NAME + PATH_INFO + "?" + QUERY_STRING.
 *
 * @example
 * ```ts
 * requestURL({ get: (n) => ({ HTTP_HOST: "example.com", REQUEST_URI: "/caf\xe9?q=1" } as Record<string, string>)[n] });
 * // "http://example.com/caf%E9?q=1"
 * ```
 */
export function requestURL(params: ParamSource): string {
  const https = isHttps(params);
  const host = hostFrom(params, https);
  let target: string;
  const uri = params.get("REQUEST_URI");
  if (uri !== undefined && uri !== "") {
    target = encodeUnsafe(uri, RAW_UNSAFE);
  } else {
    const script = params.get("SCRIPT_NAME") ?? "";
    const pathInfo = params.get("PATH_INFO") ?? "";
    const query = params.get("QUERY_STRING") ?? "";
    target = encodeUnsafe(script + pathInfo, DECODED_UNSAFE);
    if (query !== "") target += "?" + encodeUnsafe(query, RAW_UNSAFE);
  }
  // An absolute-form target ("http://host/x") or "*" still maps onto this server's origin.
  if (target.charCodeAt(0) !== 0x2f) {
    const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*/.exec(target);
    target = m ? target.slice(m[0].length) : "/" + target;
    if (target.charCodeAt(0) !== 0x2f) target = "/" + target;
  }
  const text = `${https ? "https" : "http"}://${host}${target}`;
  try {
    return new URL(text).href;
  } catch {
    // The host passed the pattern but not the URL parser (for example a bad port): fall back.
    return new URL(`${https ? "https" : "http"}://localhost${target}`).href;
  }
}
