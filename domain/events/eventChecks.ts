/**
 * Checking one SDK event of a batch (issue 8, intake): decoded with SdkEvent on its own, then the rules
 * the schema cannot say alone. A failing event is rejected with a reason naming the field, and the rest
 * of the batch is kept. Pure: the server clock arrives as an argument.
 */
import { Effect, Option, Result, Schema } from "effect"
import { validate } from "../validation.ts"
import { Dims, maxProps, SdkEvent } from "./SdkEvent.ts"

/** How far ahead of the server clock a device time may be: a clock set wrong by more is refused, not counted in the future. */
export const maxFutureMillis = 24 * 60 * 60 * 1000
/**
 * The earliest device time, 0000-01-01T00:00:00Z: RFC 3339 allows `0000-01-01T00:00:00+23:59`, which is
 * in year −1, where a session's start written back as RFC 3339 (`-000001-12-31T…`) is no date-time: the
 * session was set aside, uncounted (found by an outside attack).
 */
const earliestMillis = Date.parse("0000-01-01T00:00:00Z")

/** One event refused: its 0-based index in the batch and why, naming the field (`time: …`). */
export const Rejection = Schema.Struct({ index: Schema.Int, reason: Schema.String }).annotate({ identifier: "EventRejection" })
export type Rejection = typeof Rejection.Type

const at = (path: ReadonlyArray<string | number>, message: string) => `${path.length === 0 ? "event" : path.join(".")}: ${message}`

/** An accepted event and its wire form (JSON), which is what is published: written once. */
export interface CheckedEvent {
  readonly event: SdkEvent
  readonly json: string
}

// The usual event is valid: decoded without collecting issues (twice as fast), which only a refused one needs.
const decodeFast = Schema.decodeUnknownOption(SdkEvent)

/** Why an event does not decode: its first failing field. */
const reasonOf = (raw: unknown): string => {
  const decoded = validate(SdkEvent, raw, "ignore")
  const first = Result.isFailure(decoded) ? decoded.failure[0] : undefined
  return first === undefined ? "event: invalid" : at(first.path, first.message)
}

/** C0, DEL and C1 controls. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const control = /[\u0000-\u001f\u007f-\u009f]/

/** A lone surrogate: `"\ud800"` is valid JSON, but not text (not well-formed, String.prototype.isWellFormed). */
const loneSurrogate = /\p{Cs}/u

/** Dims' fields, in the order a decoded Dims holds them: derived from the schema, so that a new dimension is checked too. */
const dimNames = Object.keys(Dims.fields) as ReadonlyArray<keyof Dims>

/**
 * The first of the fields that become keys (ids and dimensions: rollup keys, session ids, answers)
 * whose value is `bad`. Read field by field, without a list of them built per event: every event of
 * every batch passes here, and nearly all of them pass.
 */
const keyFieldWhere = (event: SdkEvent, bad: (value: string) => boolean): string | undefined => {
  if (bad(event.deviceId)) return "deviceId"
  if (event.name !== undefined && bad(event.name)) return "name"
  if (event.creativeId !== undefined && bad(event.creativeId)) return "creativeId"
  if (event.dims === undefined) return undefined
  for (const dim of dimNames) {
    const value = event.dims[dim]
    if (value !== undefined && bad(value)) return `dims.${dim}`
  }
  return undefined
}

const hasControl = (value: string) => control.test(value)
const hasLoneSurrogate = (value: string) => loneSurrogate.test(value)

/**
 * The first field holding a control character, if any: ids and dimensions become rollup keys, session
 * ids and answers, where a NUL or a line break would split lines and two ids that look the same could
 * differ. Checked at intake only (not in SdkEvent), so that batches already on EVENTS still decode.
 */
const controlsIn = (event: SdkEvent): string | undefined => keyFieldWhere(event, hasControl)

/**
 * The first field holding a lone surrogate, if any, properties included: written as UTF-8 (a hash,
 * SQLite, a NATS subject) it becomes U+FFFD, so `dev-\ud800` and `dev-\udc00` would be one device and
 * the second's events dropped as duplicates. At intake only, like controls.
 */
const loneSurrogatesIn = (event: SdkEvent): string | undefined => {
  const field = keyFieldWhere(event, hasLoneSurrogate)
  if (field !== undefined || event.props === undefined) return field
  for (const key of Object.keys(event.props)) {
    if (hasLoneSurrogate(key)) return "props"
    const value = event.props[key]
    if (typeof value === "string" && hasLoneSurrogate(value)) return `props.${key}`
  }
  return undefined
}

/** The event decoded and checked, or the reason it is refused. Unknown fields are ignored (newer SDKs). */
/** The length of the first prop key `raw` was sent with that is empty or over 64 characters, if any. */
const propKeyOutOfBounds = (raw: unknown): number | undefined => {
  const props = typeof raw === "object" && raw !== null ? (raw as { readonly props?: unknown }).props : undefined
  if (typeof props !== "object" || props === null) return undefined
  for (const key of Object.keys(props)) if (key.length === 0 || key.length > 64) return key.length
  return undefined
}

export const checkEvent = (raw: unknown, nowMillis: number, limits: { readonly maxEventBytes: number }): Result.Result<CheckedEvent, string> => {
  // Keys out of 1–64 characters are dropped by the decoding of a record, not refused: a prop sent with one
  // was lost without a word (stop 24's outside attack). The keys sent are checked first, the reason
  // naming the length, not the key (which may be long).
  const badKey = propKeyOutOfBounds(raw)
  if (badKey !== undefined) return Result.fail(`props: a key of ${badKey} characters (1 to 64)`)
  const decoded = decodeFast(raw)
  if (Option.isNone(decoded)) return Result.fail(reasonOf(raw))
  const event = decoded.value
  const time = Date.parse(event.time)
  if (time > nowMillis + maxFutureMillis) return Result.fail("time: more than 24 hours ahead of the server clock")
  if (time < earliestMillis) return Result.fail("time: before 0000-01-01T00:00:00Z")
  if (event.type === "custom" && event.name === undefined) return Result.fail("name: a custom event needs a name")
  if ((event.type === "impression" || event.type === "click") && event.campaignId === undefined) {
    return Result.fail(`campaignId: an ${event.type} event needs its campaign`)
  }
  if (event.props !== undefined && Object.keys(event.props).length > maxProps) return Result.fail(`props: more than ${maxProps} properties`)
  // the name plain objects take for their prototype: such a prop was accepted and never counted (found
  // by an outside attack), so it is refused rather than carried through every object on the way
  if (event.props !== undefined && Object.hasOwn(event.props, "__proto__")) return Result.fail("props.__proto__: a reserved name")
  const controls = controlsIn(event)
  if (controls !== undefined) return Result.fail(`${controls}: control characters (NUL, line breaks, escapes) are not allowed`)
  const illFormed = loneSurrogatesIn(event)
  if (illFormed !== undefined) return Result.fail(`${illFormed}: not well-formed Unicode (a lone surrogate such as \\ud800)`)
  // Its wire form is what is published (SdkEvent's decoded and encoded forms are the same): its size
  // bounds a message, since an event never spans two.
  const json = JSON.stringify(event)
  if (json.length > limits.maxEventBytes) return Result.fail(`event: over ${limits.maxEventBytes} bytes`)
  return Result.succeed({ event, json })
}

/** One item of a batch as the body held it: the JSON value, or why it is not one. */
export type RawEvent = { readonly _tag: "Json"; readonly value: unknown } | { readonly _tag: "NotJson"; readonly reason: string }

/** Events checked between two yields of the event loop. */
const checkSlice = 200

/**
 * A batch's events checked each on its own (`checkEvent`; an item that was not JSON carries its reason),
 * yielding the event loop every `checkSlice` events: before stop 31, 10,000 events an SDK made costly to
 * check (50 props of arrays each, every one refused) held it for ~1 s in one go, every other request of the
 * process waiting (stop 31's outside attack).
 */
export const checkBatch = (items: ReadonlyArray<RawEvent>, nowMillis: number, limits: { readonly maxEventBytes: number }) =>
  Effect.gen(function*() {
    const accepted: Array<CheckedEvent> = []
    const rejected: Array<Rejection> = []
    for (let index = 0; index < items.length; index++) {
      if (index > 0 && index % checkSlice === 0) yield* Effect.yieldNow
      const item = items[index]!
      const checked = item._tag === "NotJson" ? Result.fail(item.reason) : checkEvent(item.value, nowMillis, limits)
      if (Result.isSuccess(checked)) accepted.push(checked.success)
      else rejected.push({ index, reason: checked.failure })
    }
    return { accepted, rejected }
  })
