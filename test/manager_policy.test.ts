// The process manager's sans-IO decisions: restart backoff, the crash window, recycling limits and
// the control-socket message codec.
import assert from "node:assert/strict";
import { test } from "./_support/test.ts";
import { CrashWindow, isCrashLoop, recycleLimit, recycleReason, restartDelay } from "../src/manager/policy.ts";
import { encodeMessage, encodeNowRecord, MessageDecoder, parseNowRecord } from "../src/manager/messages.ts";

test("a worker that ran a while is restarted at once; a crash loop backs off 100 ms doubling to 10 s", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 7, 8, 50].map(restartDelay), [0, 100, 200, 400, 800, 6400, 10_000, 10_000]);
});

test("an exit before ready, or a failure within a second of the start, is a crash loop; a drained exit is none", () => {
  assert.equal(isCrashLoop(5000, false, false), true);
  assert.equal(isCrashLoop(5000, false, true), true, "an exit 0 before it was ready is still a failed start");
  assert.equal(isCrashLoop(300, true, false), true);
  assert.equal(isCrashLoop(1500, true, false), false);
  assert.equal(isCrashLoop(300, true, true), false, "a ready worker that drained and exited 0 is no crash, however young");
});

test("the crash window reports once when the threshold is reached within the window, and again in a later window", () => {
  const window = new CrashWindow(3, 1000);
  assert.deepEqual([0, 100, 200, 300].map((t) => window.record(t)), [0, 0, 3, 0]);
  assert.equal(window.record(5000), 0, "old crashes left the window");
  assert.equal(window.record(5100), 0);
  assert.equal(window.record(5200), 3);
});

test("recycling limits spread ±10 % around the base and stay at least 1", () => {
  assert.equal(recycleLimit(500, 0), 450);
  assert.equal(recycleLimit(500, 0.999999), 550);
  assert.equal(recycleLimit(500, 0.5), 500);
  assert.equal(recycleLimit(1, 0.9), 1);
  const seen = new Set(Array.from({ length: 200 }, (_, i) => recycleLimit(1000, i / 200)));
  assert.ok(seen.size > 100, "different workers get different limits");
});

test("a worker is recycled for its request count or its memory, and says which", () => {
  assert.equal(recycleReason(10, 11, 100, undefined), undefined);
  assert.match(recycleReason(11, 11, 100, undefined)!, /served 11 requests/);
  assert.match(recycleReason(0, undefined, 300 * 1024 * 1024, 256 * 1024 * 1024)!, /300\.0 MiB is over 256\.0 MiB/);
});

test("control messages survive any split into chunks; junk and overlong lines are skipped", () => {
  const text = encodeMessage({ type: "hello", token: "7" }) + "not json\n" + encodeMessage({ type: "beat", served: 3, rss: 1000, oldest: { method: "GET", uri: "/spin", ageMs: 12 } }) +
    '{"type":"beat","served":-1,"rss":0}\n' + encodeMessage({ type: "ready" });
  for (let size = 1; size <= text.length; size += 7) {
    const decoder = new MessageDecoder();
    const messages = [];
    for (let i = 0; i < text.length; i += size) messages.push(...decoder.push(text.slice(i, i + size)));
    assert.deepEqual(messages, [
      { type: "hello", token: "7" },
      { type: "beat", served: 3, rss: 1000, oldest: { method: "GET", uri: "/spin", ageMs: 12 } },
      { type: "ready" },
    ]);
  }
  const decoder = new MessageDecoder();
  assert.deepEqual(decoder.push("x".repeat(70_000)), []);
  assert.deepEqual(decoder.push('{"type":"ready"}\n' + encodeMessage({ type: "ready" })), [{ type: "ready" }], "the rest of the overlong line is dropped");
});

test("a worker's now record names the request it began last, even over a longer earlier one, and an empty file names none", () => {
  const longer = encodeNowRecord(1000, "POST", "/a/very/long/path?with=a&query=string");
  const record = encodeNowRecord(2000, "GET", "/spin?x=1");
  // Each write overwrites the file from byte 0: what follows the first line is the rest of an older record.
  assert.deepEqual(parseNowRecord(record + longer.slice(record.length)), { startedAt: 2000, method: "GET", uri: "/spin?x=1" });
  assert.equal(parseNowRecord(""), undefined);
  assert.equal(parseNowRecord("2000 GET /half-writ"), undefined, "a record without its line end is not read");
  assert.equal(encodeNowRecord(1, "GET", "/x\r\ninjected").includes("\r"), false, "a URI cannot break the record's line");
  assert.equal(encodeNowRecord(1, "GET", "/" + "a".repeat(500)).length <= 2 + 4 + 200 + 1, true, "the URI is cut to 200 characters");
});
