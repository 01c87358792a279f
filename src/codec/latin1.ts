/**
 * Bytes as latin1 text, the way FastCGI names, values and CGI header lines are read: one character
 * per byte, every byte kept, so that nothing a peer sent is lost or replaced.
 * @module
 */

const utf8 = new TextDecoder();
// TextDecoder("latin1") is windows-1252 by the Encoding Standard (Deno, Bun; Node 20 decodes true
// ISO-8859-1): bytes 0x80-0x9F may come back as other characters, which FROM_1252 maps back.
const windows1252 = new TextDecoder("windows-1252");
const NOT_LATIN1 = /[^\x00-\xff]/g;
const FROM_1252 = new Map<string, string>();
{
  const high = new Uint8Array(32);
  for (let i = 0; i < 32; i++) high[i] = 0x80 + i;
  const decoded = windows1252.decode(high);
  for (let i = 0; i < 32; i++) FROM_1252.set(decoded[i]!, String.fromCharCode(0x80 + i));
}

/** Bytes as a latin1 string: every byte, 0x80-0x9F included, one character of the same code. */
export function decodeLatin1(bytes: Uint8Array): string {
  // UTF-8 never gives more characters than bytes, and one per byte only if every byte is ASCII
  // or was replaced by U+FFFD alone: the same length and no U+FFFD means the bytes were ASCII,
  // which UTF-8 and latin1 read alike. Anything else takes the slower exact way. (On ASCII this
  // is several times faster than String.fromCharCode over the bytes, even for a short header.)
  const text = utf8.decode(bytes);
  if (text.length === bytes.length && !text.includes("\uFFFD")) return text;
  return windows1252.decode(bytes).replace(NOT_LATIN1, (ch) => FROM_1252.get(ch)!);
}
