import { assert, describe, it } from "@effect/vitest"
import type { Receipt } from "../../../domain/delivery/Receipt.ts"
import { profileId } from "../../../domain/ingest/LoaderRecord.ts"
import { rowsOf } from "../../../projections/delivery/receipts.ts"

const record = (userId: string, segmentId: string) => ({ idKind: "cookie" as const, userId, segmentId, op: "add" as const, time: "2026-11-01T10:00:00Z" })
const receipt = (requestId: string, at: string, status: number, records: Receipt["records"]): Receipt => ({ destination: "dsp", requestId, status, at, records })

describe("the delivery rows of receipts", () => {
  it("keeps one row per profile, segment and destination: the later receipt, then the later sequence", () => {
    const rows = rowsOf([
      { message: receipt("r2", "2026-11-01T10:00:05Z", 200, [record("u1", "10")]), seq: 1 },
      { message: receipt("r1", "2026-11-01T10:00:01Z", 503, [record("u1", "10"), record("u2", "10")]), seq: 2 },
      { message: receipt("r3", "2026-11-01T10:00:07Z", 500, [record("u2", "10")]), seq: 3 },
      { message: receipt("r4", "2026-11-01T10:00:07Z", 201, [record("u2", "10")]), seq: 4 }
    ])
    assert.deepStrictEqual(rows.map((r) => [r.profile, r.segmentId, r.requestId, r.status]), [
      [profileId("cookie", "u1"), "10", "r2", 200],
      [profileId("cookie", "u2"), "10", "r4", 201]
    ])
  })
})
