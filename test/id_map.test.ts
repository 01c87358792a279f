import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { IdMap } from "../src/id_map.ts";

describe("IdMap", () => {
  test("behaves as a Map of the same operations, insertion order included", { timeout: 10_000 }, () => {
    // A seeded walk of sets and deletes over a few ids, so the slot and the Map both fill and empty.
    let seed = 12345;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const map = new IdMap<string>();
    const model = new Map<number, string>();
    for (let step = 0; step < 20_000; step++) {
      const id = 1 + next(6);
      if (next(3) === 0) {
        assert.equal(map.delete(id), model.delete(id), `delete ${id} at step ${step}`);
      } else {
        const value = `v${step}`;
        map.set(id, value);
        model.set(id, value);
      }
      assert.equal(map.size, model.size);
      assert.equal(map.get(id), model.get(id));
      assert.equal(map.has(id), model.has(id));
      assert.deepEqual(map.values(), [...model.values()], `order at step ${step}`);
    }
    map.clear();
    assert.equal(map.size, 0);
    assert.deepEqual(map.values(), []);
  });

  test("values() is a copy: deleting while iterating it visits every value once", { timeout: 10_000 }, () => {
    const map = new IdMap<number>();
    for (const id of [3, 1, 2]) map.set(id, id * 10);
    const seen: number[] = [];
    for (const value of map.values()) {
      seen.push(value);
      map.delete(value / 10);
    }
    assert.deepEqual(seen, [30, 10, 20]);
    assert.equal(map.size, 0);
    assert.equal(map.get(3), undefined);
  });
});
