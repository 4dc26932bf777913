/**
 * What delivering to a destination needs, from its entity state with every default applied, so the
 * deliverer never repeats them. Secret headers are not here: they come decrypted from
 * DestinationSecrets, beside this (actors/delivery/destinationConfig.ts).
 */
import { Option, Schema } from "effect"
import { defaultMaxInFlight, DestinationFields } from "../entities/destination.ts"

export const defaults = {
  method: "POST",
  batchSize: 100,
  maxInFlight: defaultMaxInFlight,
  timeoutMs: 10_000,
  maxAttempts: 8,
  lanes: 1
} as const

export const DestinationConfig = Schema.Struct({
  id: Schema.String,
  partnerId: Schema.String,
  url: Schema.String,
  method: Schema.Literals(["POST", "PUT"]),
  /** plain headers, names lower-case */
  headers: Schema.Record(Schema.String, Schema.String),
  /** the names of its secret headers (lower-case); their values come from DestinationSecrets */
  secretHeaderNames: Schema.Array(Schema.String),
  format: Schema.Literals(["single", "json-array", "ndjson"]),
  /** records per request: 1 for `single` */
  batchSize: Schema.Int,
  /** the whole destination's limit */
  ratePerSecond: Schema.Finite,
  /** each lane's share of it: ratePerSecond / lanes */
  ratePerLane: Schema.Finite,
  maxInFlight: Schema.Int,
  timeoutMs: Schema.Int,
  maxAttempts: Schema.Int,
  segmentIds: Schema.Array(Schema.String),
  /** seconds between scheduled refreshes; undefined when not scheduled */
  refreshEvery: Schema.UndefinedOr(Schema.Int),
  lanes: Schema.Int
}).annotate({ identifier: "DestinationConfig" })
export type DestinationConfig = typeof DestinationConfig.Type

const decodeFields = Schema.decodeUnknownOption(DestinationFields)
const SecretNames = Schema.Struct({ secretHeaders: Schema.optionalKey(Schema.Array(Schema.String)) })
const decodeSecretNames = Schema.decodeUnknownOption(SecretNames)

const lowerKeys = (headers: Readonly<Record<string, string>>) =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]))

/**
 * The config of destination `id` from its entity state (GET /v1/entities/destination/{id}'s `state`);
 * none when the state is not a destination's (absent, deleted).
 */
export const destinationConfigOf = (id: string, state: unknown): Option.Option<DestinationConfig> =>
  Option.map(decodeFields(state, { onExcessProperty: "ignore" }), (d) => {
    const lanes = d.lanes ?? defaults.lanes
    return {
      id,
      partnerId: d.partnerId,
      url: d.url,
      method: d.method ?? defaults.method,
      headers: lowerKeys(d.headers ?? {}),
      secretHeaderNames: Option.match(decodeSecretNames(state, { onExcessProperty: "ignore" }), { onNone: () => [], onSome: (s) => s.secretHeaders ?? [] }),
      format: d.format,
      batchSize: d.format === "single" ? 1 : d.batchSize ?? defaults.batchSize,
      ratePerSecond: d.ratePerSecond,
      ratePerLane: d.ratePerSecond / lanes,
      maxInFlight: d.maxInFlight ?? defaults.maxInFlight,
      timeoutMs: d.timeoutMs ?? defaults.timeoutMs,
      maxAttempts: d.maxAttempts ?? defaults.maxAttempts,
      segmentIds: d.segmentIds,
      refreshEvery: d.refreshEvery,
      lanes
    }
  })
