/**
 * App events as the mobile SDK sends them (issue 8): a public contract — SDKs in the field code
 * against these field names. A batch is a JSON array or JSON Lines of these; each is decoded on its
 * own, so one bad event is rejected with its index and the rest of the batch is kept.
 *
 * `(app, deviceId, seq)` identifies an event: the SDK numbers the events a device creates 0, 1, 2, …
 * and sends them again when it is not sure they arrived, so the same triple may come many times,
 * months apart. Dedupe (domain/events/dedupe.ts) keeps the first.
 */
import { Schema } from "effect"
import { Uint64String } from "../ids.ts"
import { IsoDateTime } from "../isoDateTime.ts"

/** The SDK's install id: a reinstall is a new device. Bounded: it is a key of durable state. */
export const DeviceId = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(128))

export const EventType = Schema.Literals(["open", "close", "background", "foreground", "impression", "click", "custom"])
export type EventType = typeof EventType.Type

/** A dimension's value: short text (it becomes a rollup key). */
const DimValue = Schema.String.check(Schema.isMaxLength(128))

/** The device's dimensions, as the SDK reads them; each optional (an SDK may not know the carrier). */
export const Dims = Schema.Struct({
  platform: Schema.optionalKey(DimValue),
  osVersion: Schema.optionalKey(DimValue),
  appVersion: Schema.optionalKey(DimValue),
  model: Schema.optionalKey(DimValue),
  country: Schema.optionalKey(DimValue),
  carrier: Schema.optionalKey(DimValue)
}).annotate({ identifier: "Dims" })
export type Dims = typeof Dims.Type

/** The dimensions an event is grouped by: the SDK's and the enriched ones (domain/events/CleanEvent.ts). */
export const sdkDimensions = ["platform", "osVersion", "appVersion", "model", "country", "carrier"] as const

const PropKey = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(64))
const PropString = Schema.String.check(Schema.isMaxLength(256))

/** A custom event's properties: string keys, string or number values (bounded in count by `maxProps`). */
export const Props = Schema.Record(PropKey, Schema.Union([PropString, Schema.Finite]))
export const maxProps = 50

/**
 * A number an SDK may send as a prop: at most 10^15 either way, so that sums of them stay finite and
 * exact enough. (Before, found by an outside attack: two events of `amount: 1e308` in one minute made
 * that minute's sum Infinity, and every metrics query over it answered 500.)
 */
export const maxPropNumber = 1e15
const SdkProps = Schema.Record(PropKey, Schema.Union([PropString, Schema.Finite.check(Schema.isBetween({ minimum: -maxPropNumber, maximum: maxPropNumber }))]))

/** One event on the wire. `name`/`props` belong to custom events, `campaignId`/`creativeId` to ad events. */
export const SdkEvent = Schema.Struct({
  deviceId: DeviceId,
  // one message for every way out (2^53 itself is an integer, but not a safe one)
  seq: Schema.Number.check(Schema.isInt({ expected: "an integer from 0 to 2^53 − 1" }), Schema.isGreaterThanOrEqualTo(0, { expected: "an integer from 0 to 2^53 − 1" })),
  time: IsoDateTime,
  type: EventType,
  name: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(128))),
  props: Schema.optionalKey(SdkProps),
  campaignId: Schema.optionalKey(Uint64String),
  creativeId: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(128))),
  dims: Schema.optionalKey(Dims)
}).annotate({ identifier: "SdkEvent" })
export type SdkEvent = typeof SdkEvent.Type

/** What the intake publishes on EVENTS (`events.<app>`): the batch's accepted events, with when they were received. */
export const EventBatch = Schema.Struct({
  app: Uint64String,
  /** server time the batch was received (RFC 3339): intake latency and late-arrival counts start here */
  receivedAt: IsoDateTime,
  events: Schema.Array(SdkEvent)
}).annotate({ identifier: "EventBatch" })
export type EventBatch = typeof EventBatch.Type

/** The mark of an EVENTS message the intake wrote from checked events (domain/checked.ts): a change of what EventBatch accepts bumps it. */
export const eventBatchMark = "EventBatch/1"
