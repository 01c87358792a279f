import { test } from "./_support/test.ts";
import assert from "node:assert/strict";
import { FastCGIError, RecordType } from "../mod.ts";

test("the public entry loads and names protocol numbers after the spec", () => {
  assert.equal(RecordType.GET_VALUES_RESULT, 10);
  const e = new FastCGIError("BAD_VERSION", "version 2", { recordType: 1 });
  assert.equal(e.code, "BAD_VERSION");
  assert.equal(e.recordType, 1);
});
