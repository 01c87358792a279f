// The body pool: the stores a Response copies large byte bodies into, reused once written.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BodyPool, POOLED_MAX, POOLED_MIN, TRIM_PERIOD } from "../src/app/body_pool.ts";

const KiB = 1024;

function bytes(length: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 13 + seed) & 255);
}

test("a copy holds the bytes as they were, whatever happens to the source afterwards", () => {
  const pool = new BodyPool();
  for (const length of [0, 10, POOLED_MIN - 1, POOLED_MIN, 600 * KiB, POOLED_MAX, POOLED_MAX + 1]) {
    const source = bytes(length);
    const copy = pool.copy(source);
    source.fill(0);
    assert.equal(copy.byteLength, length);
    assert.deepEqual(copy, bytes(length), `${length} bytes`);
  }
});

test("bodies outside the pooled range get a store of their own, of their size; inside it, a power-of-two store", () => {
  const pool = new BodyPool();
  assert.equal(pool.copy(bytes(POOLED_MIN - 1)).buffer.byteLength, POOLED_MIN - 1);
  assert.equal(pool.copy(bytes(POOLED_MAX + 1)).buffer.byteLength, POOLED_MAX + 1);
  assert.equal(pool.copy(bytes(POOLED_MIN)).buffer.byteLength, POOLED_MIN);
  assert.equal(pool.copy(bytes(POOLED_MIN + 1)).buffer.byteLength, 2 * POOLED_MIN);
  assert.equal(pool.copy(bytes(600 * KiB)).buffer.byteLength, 1024 * KiB);
  assert.equal(pool.copy(bytes(1024 * KiB)).buffer.byteLength, 1024 * KiB);
  assert.equal(pool.copy(bytes(POOLED_MAX)).buffer.byteLength, POOLED_MAX);
});

test("a store given back serves the next copy of its class, and only of its class", () => {
  const pool = new BodyPool();
  const first = pool.copy(bytes(700 * KiB, 1));
  const store = first.buffer;
  assert.equal(pool.give(store), true);
  assert.equal(pool.freeBytes, 1024 * KiB);
  // Another class does not take it.
  assert.notEqual(pool.copy(bytes(100 * KiB)).buffer, store);
  const second = pool.copy(bytes(900 * KiB, 2));
  assert.equal(second.buffer, store);
  assert.equal(pool.freeBytes, 0);
  assert.deepEqual(second, bytes(900 * KiB, 2));
  // Taken again: the next copy of the class gets a new store.
  assert.notEqual(pool.copy(bytes(900 * KiB, 3)).buffer, store);
});

test("give refuses what is no class size and what would pass the limit", () => {
  const pool = new BodyPool(3 * POOLED_MIN);
  assert.equal(pool.give(new ArrayBuffer(POOLED_MIN + 1)), false);
  assert.equal(pool.give(new ArrayBuffer(POOLED_MIN / 2)), false);
  assert.equal(pool.give(new ArrayBuffer(POOLED_MAX * 2)), false);
  assert.equal(pool.give(new ArrayBuffer(POOLED_MIN)), true);
  assert.equal(pool.give(new ArrayBuffer(2 * POOLED_MIN)), true);
  assert.equal(pool.freeBytes, 3 * POOLED_MIN);
  assert.equal(pool.give(new ArrayBuffer(POOLED_MIN)), false, "over the limit");
  assert.equal(pool.freeBytes, 3 * POOLED_MIN);
});

test("trim lets the free stores go only after a whole period in which none was taken", () => {
  const pool = new BodyPool();
  let now = 1_000_000;
  pool.trim(now);
  pool.give(pool.copy(bytes(POOLED_MIN)).buffer);
  assert.equal(pool.freeBytes, POOLED_MIN);
  pool.trim((now += TRIM_PERIOD / 2));
  assert.equal(pool.freeBytes, POOLED_MIN, "trimmed before the period was over");
  pool.trim((now += TRIM_PERIOD));
  assert.equal(pool.freeBytes, POOLED_MIN, "trimmed though a store was taken during the period");
  pool.trim((now += TRIM_PERIOD));
  assert.equal(pool.freeBytes, 0, "an unused period did not trim");
});
