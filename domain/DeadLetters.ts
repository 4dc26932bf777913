/**
 * Dead letters: bus messages the platform could not handle (undecodable, for no known entity type,
 * delivered too often without an answer), kept with why and where they came from instead of being
 * redelivered for ever or dropped. Written by the bus (infra/nats/commandBus.ts) into the DEADLETTERS
 * stream; read here, oldest first, for `GET /v1/admin/dead-letters`.
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"

/**
 * Why a message was given up on:
 * - `undecodable`: not a command (or batch of commands) at all
 * - `unknown-entity-type`: a command for an entity type this platform does not run
 * - `wrong-shard`: a command published on a shard its entity does not belong to (it would bypass the entity's single writer)
 * - `max-deliveries`: delivered COMMAND_MAX_DELIVER times without being answered
 */
export const DeadLetterReason = Schema.Literals(["undecodable", "unknown-entity-type", "wrong-shard", "max-deliveries"])
export type DeadLetterReason = typeof DeadLetterReason.Type

/** A dead letter as stored: the original message (payload bounded) and what happened to it. */
export const DeadLetterRecord = Schema.Struct({
  reason: DeadLetterReason,
  /** what exactly could not be handled, for people */
  detail: Schema.String,
  /** the stream it was taken from (CMD) and its subject and sequence there */
  stream: Schema.String,
  subject: Schema.String,
  streamSequence: Schema.Int,
  /** how many times the bus had delivered it */
  deliveries: Schema.Int,
  /** when it was dead-lettered (ISO-8601 UTC) */
  deadAt: Schema.String,
  headers: Schema.Record(Schema.String, Schema.Array(Schema.String)),
  /** the original payload: UTF-8 text as is, anything else base64; cut at `payloadBytes` > the kept bound */
  payload: Schema.String,
  payloadEncoding: Schema.Literals(["utf8", "base64"]),
  /** the original payload's size in bytes */
  payloadBytes: Schema.Int,
  /** the payload kept is only the first part of the original */
  payloadTruncated: Schema.Boolean
})
export type DeadLetterRecord = typeof DeadLetterRecord.Type

/** A dead letter with its position in DEADLETTERS (the cursor of the listing). */
export const DeadLetter = Schema.Struct({ sequence: Schema.Int, ...DeadLetterRecord.fields }).annotate({ identifier: "DeadLetter" })
export type DeadLetter = typeof DeadLetter.Type

export const DeadLetterPage = Schema.Struct({
  deadLetters: Schema.Array(DeadLetter),
  /** pass as `after` for the next page; absent when nothing newer is kept */
  nextAfter: Schema.optionalKey(Schema.Int)
}).annotate({ identifier: "DeadLetterPage" })
export type DeadLetterPage = typeof DeadLetterPage.Type

export class DeadLettersError extends Schema.TaggedError<DeadLettersError>()("DeadLettersError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export class DeadLetters extends Context.Service<DeadLetters, {
  /** Up to `limit` dead letters, oldest first, after the sequence `after` (exclusive); from the oldest kept without it. */
  readonly list: (options: { readonly limit: number; readonly after?: number | undefined }) => Effect.Effect<DeadLetterPage, DeadLettersError>
}>()("tributary/DeadLetters") {}
