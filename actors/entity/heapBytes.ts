/**
 * What a value occupies on V8's heap, estimated from its shape, for the memory budgets (EntityMemory).
 * Modelled on Node's 64-bit V8 without pointer compression (8-byte slots): a string is a 16-byte
 * header plus its characters (one byte each when all are Latin-1, two otherwise) rounded to 8; an
 * array a 32-byte object plus a 16-byte backing store of one slot per element; an object a 24-byte
 * header and one slot per property (three per entry past 32 properties, where V8 keeps a dictionary);
 * a non-integer or large number a 16-byte HeapNumber. The length of its JSON, the earlier measure,
 * missed the per-string header: 10,000 short ids measured a quarter of what they occupy.
 * Shared objects are counted once; walked without recursion, so a deeply nested value cannot
 * overflow the stack.
 */

const SLOT = 8
const align = (bytes: number) => Math.ceil(bytes / SLOT) * SLOT
// eslint-disable-next-line no-control-regex
const beyondLatin1 = /[^\u0000-\u00ff]/

/** A string's own bytes (what a slot pointing at it does not include). */
export const stringBytes = (text: string): number => 16 + align(beyondLatin1.test(text) ? 2 * text.length : text.length)

const numberBytes = (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 ? 0 : 16

/** Bytes of `value` beyond the slot that refers to it. */
export const heapBytes = (value: unknown): number => {
  let total = 0
  const seen = new Set<object>()
  const pending: Array<unknown> = [value]
  while (pending.length > 0) {
    const next = pending.pop()
    switch (typeof next) {
      case "string":
        total += stringBytes(next)
        break
      case "number":
        total += numberBytes(next)
        break
      case "bigint":
        total += 16 + align(next.toString(16).length / 2)
        break
      case "object": {
        if (next === null || seen.has(next)) break
        seen.add(next)
        if (Array.isArray(next)) {
          total += 32 + 16 + SLOT * next.length
          for (const item of next) pending.push(item)
        } else if (next instanceof Map || next instanceof Set) {
          total += 64 + 4 * SLOT * next.size
          if (next instanceof Map) for (const [key, item] of next) pending.push(key, item)
          else for (const item of next) pending.push(item)
        } else if (next instanceof Date) {
          total += 48
        } else {
          // An error (a remembered rejection) also holds the stack trace captured when it was made.
          if (next instanceof Error) total += 1_024
          const keys = Object.keys(next)
          total += 24 + (keys.length <= 32 ? SLOT * keys.length : 16 + 3 * SLOT * keys.length)
          // Property names of plain records are shared by every object of the same shape; their values are not.
          for (const key of keys) pending.push((next as Record<string, unknown>)[key])
        }
        break
      }
      default:
        // booleans, undefined, symbols, functions: nothing beyond their slot worth counting
        break
    }
  }
  return total
}
