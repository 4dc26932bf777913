import { assert, describe, it } from "@effect/vitest"
import type { Schema } from "effect"
import { applyMergePatch, diffMergePatch } from "../../domain/mergePatch.ts"

/** JSON as a client sends it: JSON.parse makes `__proto__` an own member, as it does every key. */
const json = (text: string) => JSON.parse(text) as Schema.JsonObject

describe("JSON merge patch", () => {
  // The examples of RFC 7396, Appendix A.
  const cases: ReadonlyArray<readonly [unknown, unknown, unknown]> = [
    [{ a: "b" }, { a: "c" }, { a: "c" }],
    [{ a: "b" }, { b: "c" }, { a: "b", b: "c" }],
    [{ a: "b" }, { a: null }, {}],
    [{ a: "b", b: "c" }, { a: null }, { b: "c" }],
    [{ a: ["b"] }, { a: "c" }, { a: "c" }],
    [{ a: "c" }, { a: ["b"] }, { a: ["b"] }],
    [{ a: { b: "c" } }, { a: { b: "d", c: null } }, { a: { b: "d" } }],
    [{ a: [{ b: "c" }] }, { a: [1] }, { a: [1] }],
    [["a", "b"], ["c", "d"], ["c", "d"]],
    [{ a: "b" }, ["c"], ["c"]],
    [{ a: "foo" }, null, null],
    [{ a: "foo" }, "bar", "bar"],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: "b", c: null }, { a: "b" }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }]
  ]
  it("applies the RFC 7396 examples", () => {
    for (const [target, patch, result] of cases) assert.deepStrictEqual(applyMergePatch(target as never, patch as never), result)
  })

  it("diffs to the smallest patch that reproduces the target", () => {
    const from = { a: 1, b: { c: 2, d: 3 }, e: [1, 2], f: "x" }
    const to = { a: 1, b: { c: 2, d: 4 }, e: [1, 2, 3], g: true }
    const patch = diffMergePatch(from, to)
    assert.deepStrictEqual(patch, { b: { d: 4 }, e: [1, 2, 3], f: null, g: true })
    assert.deepStrictEqual(applyMergePatch(from, patch), to)
    assert.deepStrictEqual(diffMergePatch(to, to), {})
  })

  describe("members named like Object.prototype's", () => {
    const names = ["constructor", "toString", "hasOwnProperty", "__proto__", "valueOf"]

    it("adds, merges and removes them like any other member", () => {
      const added = applyMergePatch({}, json(`{"constructor":"c","toString":{"a":1},"hasOwnProperty":3,"__proto__":{"polluted":true}}`)) as Schema.JsonObject
      assert.deepStrictEqual(Object.keys(added), ["constructor", "toString", "hasOwnProperty", "__proto__"])
      assert.strictEqual(JSON.stringify(added), `{"constructor":"c","toString":{"a":1},"hasOwnProperty":3,"__proto__":{"polluted":true}}`)
      assert.strictEqual(Object.getPrototypeOf(added), Object.prototype)

      const merged = applyMergePatch(added, json(`{"toString":{"b":2},"__proto__":{"more":1},"constructor":null}`))
      assert.strictEqual(JSON.stringify(merged), `{"toString":{"a":1,"b":2},"hasOwnProperty":3,"__proto__":{"polluted":true,"more":1}}`)
      const removed = applyMergePatch(merged, json(`{"__proto__":null,"toString":null,"hasOwnProperty":null}`))
      assert.strictEqual(JSON.stringify(removed), "{}")
    })

    it("diffs them: a member the target lacks is removed, one it has is kept", () => {
      for (const name of names) {
        const withIt = json(`{"a":1,${JSON.stringify(name)}:{"x":1}}`)
        const without = json(`{"a":1}`)
        // absent on one side: inherited members of the other do not count as present
        assert.strictEqual(JSON.stringify(diffMergePatch(withIt, without)), `{${JSON.stringify(name)}:null}`, name)
        assert.strictEqual(JSON.stringify(diffMergePatch(without, withIt)), `{${JSON.stringify(name)}:{"x":1}}`, name)
        assert.strictEqual(JSON.stringify(applyMergePatch(without, diffMergePatch(without, withIt))), JSON.stringify(withIt), name)
        assert.deepStrictEqual(diffMergePatch(withIt, withIt), {}, name)
      }
    })

    it("pollutes no prototype", () => {
      applyMergePatch(json(`{"__proto__":{"a":1}}`), json(`{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}`))
      diffMergePatch(json(`{}`), json(`{"__proto__":{"polluted":true}}`))
      assert.isUndefined((Object.prototype as Record<string, unknown>).polluted)
      assert.isUndefined(({} as Record<string, unknown>).polluted)
    })
  })
})
