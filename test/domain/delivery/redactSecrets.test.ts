import { assert, describe, it } from "@effect/vitest"
import { redactor } from "../../../domain/delivery/redactSecrets.ts"

const redactSecrets = (text: string, secrets: ReadonlyArray<string>) => redactor(secrets)(text)

const token = "c2stbGl2ZS/hN2Y5+Q3dlcnR5/dWlvcA=="
const secrets = [`Bearer ${token}`]

/** `value` with every character written as `\uXXXX` (one case of hex digits or the other). */
const unicodeEscaped = (value: string, upper = false) =>
  [...value].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).map((e) => (upper ? e.toUpperCase().replace("\\U", "\\u") : e)).join("")

describe("redactor", () => {
  it("cuts out a value and its credential alone, as written", () => {
    assert.strictEqual(redactSecrets(`refused Bearer ${token} (token ${token})`, secrets), "refused [redacted] (token [redacted])")
  })

  it("cuts out a value echoed JSON-escaped, URL-encoded, or both mixed within it", () => {
    const json = JSON.stringify({ received: `Bearer ${token}` }).replaceAll("/", "\\/")
    assert.notInclude(redactSecrets(json, secrets).replaceAll("\\/", "/"), token)
    assert.strictEqual(redactSecrets(`got ${encodeURIComponent(`Bearer ${token}`)}!`, secrets), "got [redacted]!")
    assert.strictEqual(redactSecrets(`got ${encodeURIComponent(token).replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase())}!`, secrets), "got [redacted]!")
    assert.strictEqual(redactSecrets(`got Bearer+${token}!`, secrets), "got [redacted]!")
    assert.strictEqual(redactSecrets(`got ${unicodeEscaped(token)} and ${unicodeEscaped(token, true)}`, secrets), "got [redacted] and [redacted]")
    // each character in its own form
    const mixed = [...token].map((c, i) => (i % 3 === 0 ? `%${c.charCodeAt(0).toString(16)}` : i % 3 === 1 ? `\\${c}` : c)).join("")
    assert.strictEqual(redactSecrets(`[${mixed}]`, secrets), "[[redacted]]")
  })

  it("cuts out a value holding escape-like characters (`%41`, a backslash, a plus) echoed as written, in JSON or URL-encoded", () => {
    const odd = "p%41ss\\word+1"
    assert.strictEqual(redactSecrets(`saw ${odd}.`, [odd]), "saw [redacted].")
    assert.strictEqual(redactSecrets(`saw ${JSON.stringify(odd)}.`, [odd]), "saw \"[redacted]\".")
    assert.strictEqual(redactSecrets(`saw ${encodeURIComponent(odd)}.`, [odd]), "saw [redacted].")
  })

  it("leaves a text without them as it is, and near-copies too; overlapping places are cut as one", () => {
    assert.strictEqual(redactSecrets("nothing to see; Bearer is a word", secrets), "nothing to see; Bearer is a word")
    const long = "k".repeat(4_088) + "Z"
    const nearCopies = `Bearer ${"k".repeat(4_088)}`.repeat(6)
    assert.strictEqual(redactSecrets(nearCopies, [`Bearer ${long}`]), nearCopies)
    assert.strictEqual(redactSecrets(`${nearCopies}Z`, [`Bearer ${long}`]).endsWith("[redacted]"), true)
    assert.strictEqual(redactSecrets("xabcabcabcx", ["abcabc"]), "x[redacted]x")
  })

  it("looks for words shorter than 4 characters only inside the whole value", () => {
    assert.strictEqual(redactSecrets("key abc and Basic abc", ["Basic abc"]), "key abc and [redacted]")
  })
})
