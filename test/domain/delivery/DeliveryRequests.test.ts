import { assert, describe, it } from "@effect/vitest"
import type { Chunk } from "../../../domain/delivery/Chunk.ts"
import { bodyOf, headersFor, requestsOf } from "../../../domain/delivery/DeliveryRequests.ts"

const chunk: Chunk = {
  destination: "acme",
  lane: 0,
  packageId: "continuous",
  kind: "continuous",
  seq: 3,
  records: ["a", "b", "a", "c", "d"].map((userId, i) => ({
    idKind: "cookie" as const,
    userId,
    segmentId: "100",
    op: i === 2 ? "remove" as const : "add" as const,
    time: "2026-11-01T10:00:00.000Z"
  }))
}

describe("a chunk's requests", () => {
  it("single: one record per request, keyed by the chunk and the record's place", () => {
    const requests = requestsOf(chunk, "single", 100)
    assert.deepStrictEqual(requests.map((r) => r.id), [0, 1, 2, 3, 4].map((n) => `acme.0.continuous.3.${n}`))
    assert.deepStrictEqual(JSON.parse(bodyOf("single", requests[2]!.records)), chunk.records[2])
  })

  it("batched: up to batchSize records in order, the users each names, the same split every time", () => {
    const requests = requestsOf(chunk, "json-array", 2)
    assert.deepStrictEqual(requests.map((r) => r.records.map((x) => x.userId)), [["a", "b"], ["a", "c"], ["d"]])
    assert.deepStrictEqual(requests[0]!.users, ["cookie:a", "cookie:b"])
    assert.deepStrictEqual(requestsOf(chunk, "json-array", 2), requests)
    assert.deepStrictEqual(JSON.parse(bodyOf("json-array", requests[1]!.records)), chunk.records.slice(2, 4))
    const lines = bodyOf("ndjson", requests[1]!.records).split("\n")
    assert.deepStrictEqual(lines.slice(0, 2).map((l) => JSON.parse(l)), chunk.records.slice(2, 4))
    assert.strictEqual(lines[2], "")
    assert.deepStrictEqual(requests.map((r) => r.id), ["acme.0.continuous.3.0-1", "acme.0.continuous.3.2-3", "acme.0.continuous.3.4"])
  })

  it("skips the records receipts name, whatever the grouping then, and groups the rest anew", () => {
    // delivered at batch size 2: records 0–1 and 4; then raised to 10, then single
    const delivered = new Set(["acme.0.continuous.3.0-1", "acme.0.continuous.3.4", "acme.0.continuous.33.0-1", "other.0.continuous.3.2"])
    assert.deepStrictEqual(requestsOf(chunk, "json-array", 10, delivered).map((r) => [r.id, r.records.length]), [["acme.0.continuous.3.2-3", 2]])
    assert.deepStrictEqual(requestsOf(chunk, "single", 10, delivered).map((r) => r.id), ["acme.0.continuous.3.2", "acme.0.continuous.3.3"])
    assert.deepStrictEqual(requestsOf(chunk, "ndjson", 10, new Set(["acme.0.continuous.3.1-2"])).map((r) => r.id), ["acme.0.continuous.3.0", "acme.0.continuous.3.3-4"])
  })
})

describe("a destination's request headers", () => {
  it("carry the format's content type, or the destination's own in whatever case it wrote it, never both", () => {
    assert.deepStrictEqual(headersFor({ "x-plain": "p" }, "ndjson"), { "x-plain": "p", "content-type": "application/x-ndjson" })
    assert.deepStrictEqual(headersFor({ "x-plain": "p" }, "single"), { "x-plain": "p", "content-type": "application/json" })
    assert.deepStrictEqual(headersFor({ "Content-Type": "application/vnd.acme+json" }, "json-array"), { "Content-Type": "application/vnd.acme+json" })
  })
})
