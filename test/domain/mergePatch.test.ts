import { assert, describe, it } from "@effect/vitest"
import { applyMergePatch, diffMergePatch } from "../../domain/mergePatch.ts"

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
})
