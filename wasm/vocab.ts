// The well-known parameter names (the CGI variables nginx, Apache and lighttpd send, and the
// GET_VALUES names). A name found here is reported by its index, so JS can hand out one interned
// string instead of decoding the bytes of every name of every request. Order is the id: append only.

const NAMES: StaticArray<string> = [
  "REQUEST_METHOD", "REQUEST_URI", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
  "SCRIPT_NAME", "SCRIPT_FILENAME", "DOCUMENT_URI", "DOCUMENT_ROOT", "SERVER_PROTOCOL",
  "REQUEST_SCHEME", "HTTPS", "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "REMOTE_ADDR",
  "REMOTE_PORT", "SERVER_ADDR", "SERVER_PORT", "SERVER_NAME", "REDIRECT_STATUS",
  "PATH_INFO", "PATH_TRANSLATED", "HTTP_HOST", "HTTP_USER_AGENT", "HTTP_ACCEPT",
  "HTTP_ACCEPT_LANGUAGE", "HTTP_ACCEPT_ENCODING", "HTTP_CONNECTION", "HTTP_COOKIE", "HTTP_REFERER",
  "HTTP_CACHE_CONTROL", "HTTP_UPGRADE_INSECURE_REQUESTS", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH",
  "FCGI_DATA_LENGTH", "FCGI_DATA_LAST_MOD", "FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS",
  "AUTH_TYPE", "REMOTE_USER", "REMOTE_HOST", "REMOTE_IDENT", "SERVER_ADMIN",
  "SERVER_SIGNATURE", "CONTEXT_DOCUMENT_ROOT", "CONTEXT_PREFIX", "SCRIPT_URI", "SCRIPT_URL",
  "REDIRECT_URL", "UNIQUE_ID", "PATH", "ORIG_PATH_INFO", "REQUEST_TIME",
  "HTTP_ORIGIN", "HTTP_AUTHORIZATION", "HTTP_PRAGMA", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_NONE_MATCH",
  "HTTP_RANGE", "HTTP_DNT", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
  "HTTP_X_REAL_IP", "HTTP_X_REQUESTED_WITH", "HTTP_SEC_FETCH_SITE", "HTTP_SEC_FETCH_MODE", "HTTP_SEC_FETCH_DEST",
  "HTTP_SEC_FETCH_USER", "HTTP_SEC_CH_UA", "HTTP_SEC_CH_UA_MOBILE", "HTTP_SEC_CH_UA_PLATFORM", "HTTP_PRIORITY",
  "HTTP_TE", "HTTP_PROXY",
];

/** Longest name the table may hold; longer names are never looked up. */
const MAX_NAME: i32 = 48;
/** Open-addressing table: slot -> id + 1 (0 = empty). 256 slots for under 128 names keeps probes short. */
const SLOTS: i32 = 256;
const TABLE: usize = memory.data(SLOTS);
/** The names as bytes, each in its own MAX_NAME-byte row (padded with zeros) for 8-byte compares. */
const BYTES: usize = memory.data(128 * MAX_NAME, 8);
const LENGTHS: usize = memory.data(128);

// Length, last two bytes and the middle byte tell the vocabulary apart with no collision at all.
// @ts-ignore: decorator
@inline function hash(p: usize, len: i32): i32 {
  return (len * 41 + <i32>load<u8>(p + len - 1) * 39 + <i32>load<u8>(p + len - 2) + <i32>load<u8>(p + (len >> 1))) & (SLOTS - 1);
}

function build(): void {
  for (let id = 0; id < NAMES.length; id++) {
    const name = unchecked(NAMES[id]);
    const len = name.length;
    const row = BYTES + <usize>(id * MAX_NAME);
    for (let i = 0; i < len; i++) store<u8>(row + i, <u8>name.charCodeAt(i));
    store<u8>(LENGTHS + id, <u8>len);
    let h = hash(row, len);
    while (load<u8>(TABLE + h) != 0) h = (h + 1) & (SLOTS - 1);
    store<u8>(TABLE + h, <u8>(id + 1));
  }
}
build();

/** The id of the name at p (len bytes), or -1 if it is not a well-known name. */
export function lookupName(p: usize, len: i32): i32 {
  if (len < 2 || len > MAX_NAME) return -1;
  let h = hash(p, len);
  while (true) {
    const slot = <i32>load<u8>(TABLE + h);
    if (slot == 0) return -1;
    const id = slot - 1;
    if (<i32>load<u8>(LENGTHS + id) == len && same(p, BYTES + <usize>(id * MAX_NAME), len)) return id;
    h = (h + 1) & (SLOTS - 1);
  }
}

// Compares len bytes, eight at a time; the last word is masked so bytes past the name never count.
function same(a: usize, b: usize, len: i32): bool {
  let i = 0;
  for (; i + 8 <= len; i += 8) {
    if (load<u64>(a + i) != load<u64>(b + i)) return false;
  }
  const rest = len - i;
  if (rest == 0) return true;
  const mask: u64 = (<u64>1 << (<u64>rest << 3)) - 1;
  return ((load<u64>(a + i) ^ load<u64>(b + i)) & mask) == 0;
}

/** How many well-known names there are (JS reads them once to build its interned strings). */
export function vocabularySize(): i32 {
  return NAMES.length;
}

/** Where the bytes of well-known name `id` are. */
export function vocabularyName(id: i32): usize {
  return BYTES + <usize>(id * MAX_NAME);
}

/** How long well-known name `id` is. */
export function vocabularyLength(id: i32): i32 {
  return <i32>load<u8>(LENGTHS + id);
}
