/**
 * Byte-array helpers shared by the application and client sides.
 * @module
 */

/** The parts joined into one new array (`total`, their summed length, when the caller has it). */
export function concatBytes(parts: readonly Uint8Array[], total?: number): Uint8Array {
  let length = total ?? 0;
  if (total === undefined) for (const part of parts) length += part.byteLength;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}
