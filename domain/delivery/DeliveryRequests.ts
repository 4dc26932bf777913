/**
 * How a chunk becomes requests (issue 9, Contract): `single` → one record per request (a JSON
 * object); `json-array` / `ndjson` → up to `batchSize` records per request, in the chunk's order. The
 * split depends only on the chunk and the format, so the `n`-th request — and its `Idempotency-Key` —
 * is the same on every retry and after a takeover (as long as the destination's format and batch size
 * did not change meanwhile).
 */
import { type Chunk, type DeliveryRecord, idempotencyKey } from "./Chunk.ts"

export type BodyFormat = "single" | "json-array" | "ndjson"

export interface DeliveryRequest {
  /** its `Idempotency-Key`, also its receipt's request id */
  readonly id: string
  readonly records: ReadonlyArray<DeliveryRecord>
  /** the users it names (`<idKind>:<userId>`): two requests naming one user are never in flight together */
  readonly users: ReadonlyArray<string>
}

export const userOf = (record: DeliveryRecord): string => `${record.idKind}:${record.userId}`

/** The requests of a chunk, in order. */
export const requestsOf = (chunk: Chunk, format: BodyFormat, batchSize: number): ReadonlyArray<DeliveryRequest> => {
  const size = format === "single" ? 1 : Math.max(1, batchSize)
  const requests: Array<DeliveryRequest> = []
  for (let start = 0, n = 0; start < chunk.records.length; start += size, n++) {
    const records = chunk.records.slice(start, start + size)
    requests.push({ id: idempotencyKey(chunk, n), records, users: [...new Set(records.map(userOf))] })
  }
  return requests
}

export const contentTypeOf = (format: BodyFormat): string => format === "ndjson" ? "application/x-ndjson" : "application/json"

/** A request's body: one JSON object (single), a JSON array, or JSON Lines. */
export const bodyOf = (format: BodyFormat, records: ReadonlyArray<DeliveryRecord>): string => {
  switch (format) {
    case "single":
      return JSON.stringify(records[0])
    case "json-array":
      return JSON.stringify(records)
    case "ndjson":
      return records.map((record) => JSON.stringify(record)).join("\n") + "\n"
  }
}
