/**
 * How a chunk becomes requests (issue 9, Contract): `single` → one record per request (a JSON
 * object); `json-array` / `ndjson` → up to `batchSize` records per request, in the chunk's order. A
 * request's `Idempotency-Key` names the records it carries (Chunk.ts `idempotencyKey`), so the split
 * — and each key — is the same on every retry and after a takeover; and if the format or batch size
 * changed meanwhile, the records no receipt names are grouped anew and none is skipped undelivered.
 */
import { type Chunk, chunkId, type DeliveryRecord, idempotencyKey } from "./Chunk.ts"

export type BodyFormat = "single" | "json-array" | "ndjson"

export interface DeliveryRequest {
  /** its `Idempotency-Key`, also its receipt's request id */
  readonly id: string
  readonly records: ReadonlyArray<DeliveryRecord>
  /** the users it names (`<idKind>:<userId>`): two requests naming one user are never in flight together */
  readonly users: ReadonlyArray<string>
}

export const userOf = (record: DeliveryRecord): string => `${record.idKind}:${record.userId}`

/** The places of a chunk's records that the request ids `delivered` (its receipts') name. */
const deliveredRecords = (chunk: Chunk, delivered: ReadonlySet<string>): ReadonlySet<number> => {
  const prefix = `${chunkId(chunk)}.`
  const places = new Set<number>()
  for (const id of delivered) {
    const range = id.startsWith(prefix) ? /^(\d+)(?:-(\d+))?$/.exec(id.slice(prefix.length)) : null
    if (range === null) continue
    const to = Math.min(Number(range[2] ?? range[1]), chunk.records.length - 1)
    for (let place = Number(range[1]); place <= to; place++) places.add(place)
  }
  return places
}

/**
 * The requests of a chunk, in order, but for the records `delivered` (request ids with a receipt)
 * names: each run of records left is split into requests of up to the batch size.
 */
export const requestsOf = (chunk: Chunk, format: BodyFormat, batchSize: number, delivered: ReadonlySet<string> = new Set()): ReadonlyArray<DeliveryRequest> => {
  const size = format === "single" ? 1 : Math.max(1, batchSize)
  const skipped = delivered.size === 0 ? undefined : deliveredRecords(chunk, delivered)
  const requests: Array<DeliveryRequest> = []
  for (let start = 0; start < chunk.records.length;) {
    if (skipped?.has(start)) {
      start++
      continue
    }
    let end = start + 1
    while (end < chunk.records.length && end - start < size && !skipped?.has(end)) end++
    const records = chunk.records.slice(start, end)
    requests.push({ id: idempotencyKey(chunk, start, end - 1), records, users: [...new Set(records.map(userOf))] })
    start = end
  }
  return requests
}

const contentTypeOf = (format: BodyFormat): string => format === "ndjson" ? "application/x-ndjson" : "application/json"

/**
 * The headers every request of a destination carries: its own, and a content type of the format's
 * unless it sets one itself (in any case: `Content-Type: application/vnd.acme+json`). Before, found by
 * an outside attack, a destination's `Content-Type` went out beside the platform's `content-type`, two
 * values of a header that takes one, and the partner read whichever it read first.
 */
export const headersFor = (headers: Readonly<Record<string, string>>, format: BodyFormat): Record<string, string> =>
  Object.keys(headers).some((name) => name.toLowerCase() === "content-type") ? { ...headers } : { ...headers, "content-type": contentTypeOf(format) }

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
