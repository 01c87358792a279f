/**
 * Checks of numeric options and arguments, worded one way everywhere: "<name> must be <rule>,
 * got <value>", as a RangeError. Below every layer: it imports nothing.
 * @module
 */

/**
 * `value` when it is a number ≥ `min` (Infinity too, unless `finite`), `fallback` when it is
 * undefined; otherwise a RangeError that names the option (`name`, e.g. "serve: maxRequests")
 * and the value.
 */
export function numberOption(name: string, value: unknown, fallback: number, min: number, finite = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value >= min) || (finite && value === Infinity)) {
    throw new RangeError(`${name} must be ${finite ? "a finite" : "a"} number ≥ ${min}, got ${String(value)}`);
  }
  return value;
}

/** `value` when it is an integer in `min`..`max`; otherwise a RangeError that names it and the value. */
export function integerInRange(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}
