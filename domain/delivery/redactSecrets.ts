/**
 * Secret header values cut out of what a partner answered, before a dead letter keeps it (issue 9:
 * secrets are never returned; dead letters are read by auditors, and a partner answering 401 often
 * echoes the header it refused). Each value, and each later word of it (`Bearer <token>`: the token
 * alone), is replaced by `[redacted]` wherever the text holds it as written or with its characters
 * escaped as an echo commonly escapes them, in any mix: JSON (`\/`, `\"`, `\\`, `\u002F`) and URLs
 * (`%2F`, `+` for a space).
 *
 * In time linear in the text: the partner writes the text, so what it writes must not choose the
 * cost. (Before, found by an outside attack: a regular expression per value, whose backtracking a body
 * of near-copies of a 4,096-character value turned into 8 s of the event loop every destination shares,
 * for each refusal.) The text is read three times, as written, with JSON's escapes decoded, and with
 * URLs' too, and every value is looked for in each by Knuth–Morris–Pratt.
 */

/** A value's words after the first that are looked for on their own, at most. */
const maxWords = 8

/** Words shorter than this are not looked for on their own (they would cut out common words). */
const minLength = 4

/** A space and a plus are one character to the search: a URL writes a space `+`. */
const canonical = (code: number) => (code === 0x20 ? 0x2b : code)

/** Header values are printable ASCII (domain/entities/headers.ts): what is looked for, as char codes. */
const patternOf = (value: string): Uint16Array => Uint16Array.from(value, (c) => canonical(c.charCodeAt(0)))

/** What `secrets` are looked for as: each value, and its later words (its credential after a scheme). */
const patternsOf = (secrets: ReadonlyArray<string>): ReadonlyArray<Uint16Array> => {
  const values = new Set<string>()
  for (const secret of secrets) {
    values.add(secret)
    for (const word of secret.split(/\s+/).slice(1, 1 + maxWords)) values.add(word)
  }
  return [...values].filter((value) => value.length >= minLength).map(patternOf)
}

/**
 * The text as the search reads it: `codes[i]` is a character, and `starts[i]`..`starts[i + 1]` where it
 * was written (no `starts`: the text as written, each character where it is).
 */
interface Reading {
  readonly codes: Uint16Array
  readonly starts?: Int32Array
}

const hexValue = (code: number) =>
  code >= 0x30 && code <= 0x39 ? code - 0x30 : code >= 0x41 && code <= 0x46 ? code - 0x37 : code >= 0x61 && code <= 0x66 ? code - 0x57 : -1

/** The value of `digits` hex digits of `text` at `at`, or -1. */
const hexAt = (text: string, at: number, digits: number) => {
  if (at + digits > text.length) return -1
  let value = 0
  for (let i = at; i < at + digits; i++) {
    const digit = hexValue(text.charCodeAt(i))
    if (digit < 0) return -1
    value = value * 16 + digit
  }
  return value
}

const asWritten = (text: string): Reading => {
  const codes = new Uint16Array(text.length)
  for (let i = 0; i < text.length; i++) codes[i] = canonical(text.charCodeAt(i))
  return { codes }
}

/**
 * Escapes decoded from left to right: `\uXXXX`, a backslash and the character it escapes, and with
 * `percents` `%XX` too. Without: a value holding `%41` as written, echoed in JSON, is still found.
 */
const decoded = (text: string, percents: boolean): Reading => {
  const codes = new Uint16Array(text.length)
  const starts = new Int32Array(text.length + 1)
  let n = 0
  for (let i = 0; i < text.length; n++) {
    starts[n] = i
    const code = text.charCodeAt(i)
    const unicode = code === 0x5c && text.charCodeAt(i + 1) === 0x75 ? hexAt(text, i + 2, 4) : -1
    const percent = percents && code === 0x25 ? hexAt(text, i + 1, 2) : -1
    if (unicode >= 0) {
      codes[n] = canonical(unicode)
      i += 6
    } else if (code === 0x5c && i + 1 < text.length) {
      codes[n] = canonical(text.charCodeAt(i + 1))
      i += 2
    } else if (percent >= 0) {
      codes[n] = canonical(percent)
      i += 3
    } else {
      codes[n] = canonical(code)
      i += 1
    }
  }
  starts[n] = text.length
  return { codes: codes.subarray(0, n), starts: starts.subarray(0, n + 1) }
}

/** Knuth–Morris–Pratt's failure table: for each prefix, the longest proper prefix that is also its suffix. */
const failureOf = (pattern: Uint16Array): Int32Array => {
  const failure = new Int32Array(pattern.length)
  for (let i = 1, k = 0; i < pattern.length; i++) {
    while (k > 0 && pattern[i] !== pattern[k]) k = failure[k - 1]!
    if (pattern[i] === pattern[k]) k++
    failure[i] = k
  }
  return failure
}

/** Adds to `spans` where `reading` holds `pattern` (in the text as written: [start, end) pairs). */
const find = (reading: Reading, pattern: Uint16Array, failure: Int32Array, spans: Array<number>) => {
  const { codes, starts } = reading
  for (let i = 0, k = 0; i < codes.length; i++) {
    while (k > 0 && codes[i] !== pattern[k]) k = failure[k - 1]!
    if (codes[i] === pattern[k]) k++
    if (k === pattern.length) {
      spans.push(starts === undefined ? i + 1 - k : starts[i + 1 - k]!, starts === undefined ? i + 1 : starts[i + 1]!)
      k = failure[k - 1]!
    }
  }
}

/**
 * A function giving a text with every place holding one of `secrets` (as described above) replaced by
 * `[redacted]`. Made once for a set of secrets (a lane's): what is looked for is prepared then.
 */
export const redactor = (secrets: ReadonlyArray<string>): (text: string) => string => {
  const patterns = patternsOf(secrets).map((pattern) => ({ pattern, failure: failureOf(pattern) }))
  return (text) => {
    if (patterns.length === 0 || text.length === 0) return text
    // a text without escapes reads the same decoded
    const escaped = text.includes("\\") || text.includes("%")
    const readings = escaped ? [asWritten(text), decoded(text, false), decoded(text, true)] : [asWritten(text)]
    const spans: Array<number> = []
    for (const { pattern, failure } of patterns) {
      for (const reading of readings) find(reading, pattern, failure, spans)
    }
    if (spans.length === 0) return text
    const order = Array.from({ length: spans.length / 2 }, (_, i) => i).sort((a, b) => spans[2 * a]! - spans[2 * b]!)
    let out = ""
    let written = 0
    for (const i of order) {
      const start = spans[2 * i]!
      const end = spans[2 * i + 1]!
      if (end <= written) continue
      // overlapping places are cut out as one
      out += start >= written ? `${text.slice(written, start)}[redacted]` : ""
      written = end
    }
    return out + text.slice(written)
  }
}
