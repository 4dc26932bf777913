/**
 * How deeply a JSON text nests, measured before it is parsed. Everything from JSON.parse on — schema
 * decoding, merge patch, the fingerprint, JSON.stringify on the bus — walks documents recursively or
 * in time that grows with their depth: a body nested millions of levels deep (8 MB of brackets, a few
 * KB gzipped) held the event loop for seconds, or overflowed the stack of whatever handled it. Every
 * JSON body parser (api/app.ts for the JSON routes, api/eventsBody.ts for app events) refuses it first
 * with this scan: one pass over the text, no recursion, stopping at the first container past the limit.
 */
import { InvalidRequest } from "./problems.ts"

const quote = 0x22
const backslash = 0x5c
const comma = 0x2c
const openObject = 0x7b
const closeObject = 0x7d
const openArray = 0x5b
const closeArray = 0x5d

/** The index of the quote closing the string whose opening quote is at `start` (text.length when none). */
const stringEnd = (text: string, start: number) => {
  for (let at = text.indexOf('"', start + 1); at !== -1; at = text.indexOf('"', at + 1)) {
    let backslashes = 0
    while (text.charCodeAt(at - 1 - backslashes) === backslash) backslashes++
    if (backslashes % 2 === 0) return at
  }
  return text.length
}

/**
 * The path of the first container, in the text's order, nested deeper than `max` levels (the top
 * value is level 1), or undefined. It counts brackets outside strings and does not validate: a text
 * that is not JSON is left for JSON.parse to refuse.
 */
export const tooDeep = (text: string, max: number): ReadonlyArray<string | number> | undefined => {
  // Per open container (at most `max`): an array's current index, or an object's current key as the
  // offset of its opening quote (-1 while its key is still to come).
  const arrays: Array<boolean> = []
  const positions: Array<number> = []
  for (let at = 0; at < text.length; at++) {
    const code = text.charCodeAt(at)
    if (code === quote) {
      const end = stringEnd(text, at)
      const top = arrays.length - 1
      if (top >= 0 && !arrays[top] && positions[top] === -1) positions[top] = at
      at = end
    } else if (code === openObject || code === openArray) {
      if (arrays.length === max) return pathOf(text, arrays, positions)
      arrays.push(code === openArray)
      positions.push(code === openArray ? 0 : -1)
    } else if (code === closeObject || code === closeArray) {
      arrays.pop()
      positions.pop()
    } else if (code === comma && arrays.length > 0) {
      const top = arrays.length - 1
      positions[top] = arrays[top] ? positions[top]! + 1 : -1
    }
  }
  return undefined
}

const pathOf = (text: string, arrays: ReadonlyArray<boolean>, positions: ReadonlyArray<number>) =>
  arrays.map((array, level) => {
    const position = positions[level]!
    if (array) return position
    if (position < 0) return ""
    // Only the keys on the way are decoded, once: escapes and all.
    try {
      return JSON.parse(text.slice(position, stringEnd(text, position) + 1)) as string
    } catch {
      return ""
    }
  })

/** The body nested deeper than `max` levels, refused as every JSON route does: 400 naming the container. */
export const nestedTooDeep = (path: ReadonlyArray<string | number>, max: number) =>
  new InvalidRequest({ issues: [{ in: "body", path, message: `nested deeper than ${max} levels` }] })
