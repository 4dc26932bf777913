/**
 * The memory budgets are only as good as their estimate: heapBytes is checked against what V8 really
 * uses for the same values, measured in a separate Node process with `--expose-gc` (heap used before
 * and after making 20 of them, collected twice).
 */
import { assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { heapBytes } from "../../../actors/entity/heapBytes.ts"

const module = fileURLToPath(new URL("../../../actors/entity/heapBytes.ts", import.meta.url))

/** [estimated, measured] bytes of one value made by `make` (an expression of `i`, parsed from JSON as the platform's states are). */
const measure = (make: string): [number, number] => {
  const script = `
    const { heapBytes } = await import(${JSON.stringify(module)})
    const make = (i) => JSON.parse(JSON.stringify(${make}))
    const keep = []
    gc(); gc()
    const before = process.memoryUsage().heapUsed
    for (let i = 0; i < 20; i++) keep.push(make(i))
    gc(); gc()
    const measured = (process.memoryUsage().heapUsed - before) / keep.length
    console.log(JSON.stringify([heapBytes(keep[0]), measured]))`
  const out = execFileSync(process.execPath, ["--expose-gc", "--no-warnings", "--input-type=module", "-e", script], { encoding: "utf8" })
  return JSON.parse(out) as [number, number]
}

describe("heapBytes", () => {
  it("estimates a strategy with 10,000 segment ids within 5% of what V8 holds for it (its JSON length said 8% less)", () => {
    const [estimated, measured] = measure(
      `({ campaignId: "1", name: "s" + i, bidPrice: 1.5, segmentIds: Array.from({ length: 10000 }, (_, k) => String(1000000000000000000n + BigInt(i * 100000 + k))) })`
    )
    assert.isAtLeast(estimated, measured * 0.95, `estimated ${estimated}, measured ${measured}`)
    assert.isAtMost(estimated, measured * 1.05, `estimated ${estimated}, measured ${measured}`)
  })

  it("does not underestimate nested objects and text beyond Latin-1", () => {
    for (const make of [
      `({ items: Array.from({ length: 1000 }, (_, k) => ({ id: String(i * 1000 + k), n: k, price: k + 0.5 })) })`,
      `({ text: "é€".repeat(5000) + i })`
    ]) {
      const [estimated, measured] = measure(make)
      assert.isAtLeast(estimated, measured * 0.95, `${make}: estimated ${estimated}, measured ${measured}`)
    }
  })

  it("counts a value shared twice once, and walks values nested deeper than the stack allows", () => {
    const ids = ["1", "2", "3"]
    assert.strictEqual(heapBytes({ a: ids, b: ids }), heapBytes({ a: ids }) + 8)
    let deep: unknown = "leaf"
    for (let i = 0; i < 100_000; i++) deep = { deep }
    assert.isAbove(heapBytes(deep), 100_000 * 24)
  })
})
