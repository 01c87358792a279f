import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Queue } from "../src/queue.ts";

describe("Queue", () => {
  test("items come out in the order they went in, across compactions", { timeout: 10_000 }, () => {
    const queue = new Queue<number>();
    const out: number[] = [];
    for (let i = 0; i < 5000; i++) {
      queue.push(i);
      if (i % 3 === 0) out.push(queue.shift()!);
    }
    assert.equal(queue.length, 5000 - out.length);
    while (queue.length > 0) out.push(queue.shift()!);
    assert.deepEqual(out, Array.from({ length: 5000 }, (_, i) => i));
    assert.equal(queue.shift(), undefined);
    assert.equal(queue.peek(), undefined);
  });

  test("unshift puts an item back at the head, peek does not take it", { timeout: 10_000 }, () => {
    const queue = new Queue<string>();
    queue.unshift("b");
    queue.push("c");
    queue.unshift("a");
    assert.equal(queue.peek(), "a");
    assert.equal(queue.length, 3);
    assert.equal(queue.shift(), "a");
    queue.unshift("again");
    assert.deepEqual([...queue], ["again", "b", "c"]);
    assert.deepEqual(queue.drain(), ["again", "b", "c"]);
    assert.equal(queue.length, 0);
    queue.push("d");
    queue.clear();
    assert.equal(queue.length, 0);
    assert.deepEqual([...queue], []);
  });
});
