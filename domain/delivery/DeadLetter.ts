/**
 * Records a destination refused (a 4xx other than 408/429) or could not take after every attempt
 * (issue 9, Contract). Kept on DLQ (`dlq.<destination>`) until replayed (sent again as new
 * requests, with new `Idempotency-Key`s) or discarded (the reason kept in the destination's history).
 */
import { Schema } from "effect"
import { IsoDateTime } from "../isoDateTime.ts"
import { maxHeaderValue } from "../entities/headers.ts"
import { DeliveryRecord, largestChunkBytes } from "./Chunk.ts"
import { Incarnation } from "./Incarnation.ts"

/** The partner's answer body is kept up to this many characters. */
export const maxAnswerBody = 2_048

/**
 * The partner's answer body is read up to this many characters, so that a secret header's value
 * echoed across the cut at `maxAnswerBody` is whole when it is cut out (before the cut): its longest
 * escaped form (`\uXXXX` for each character) fits past the cut.
 */
export const maxAnswerRead = maxAnswerBody + 6 * maxHeaderValue

/** Attempts a dead letter keeps: the first and the latest ones (a delivery's retries may run for days). */
export const attemptsKept = 20

export const Attempt = Schema.Struct({
  at: IsoDateTime,
  /** HTTP status, when the partner answered */
  status: Schema.optionalKey(Schema.Int),
  /** what went wrong without an answer (timeout, connection refused, circuit open) */
  error: Schema.optionalKey(Schema.String),
  /** the partner's answer, cut to `maxAnswerBody` */
  body: Schema.optionalKey(Schema.String)
}).annotate({ identifier: "DeliveryAttempt" })
export type Attempt = typeof Attempt.Type

export const DeadLetter = Schema.Struct({
  /** unique per dead letter: the request's Idempotency-Key */
  id: Schema.String,
  destination: Schema.String,
  /** the destination's incarnation that wrote it: a later destination of the same id neither lists nor replays it */
  incarnation: Schema.optionalKey(Incarnation),
  records: Schema.Array(DeliveryRecord),
  attempts: Schema.Array(Attempt)
}).annotate({ identifier: "DeliveryDeadLetter" })
export type DeadLetter = typeof DeadLetter.Type

/**
 * The most bytes a dead letter can take on DLQ: the records of one request (at most a chunk's) and
 * `attempts` kept attempts, each with a partner's answer of `maxAnswerBody` characters JSON writes in six
 * and an error message of up to 1 KiB.
 */
export const largestDeadLetterBytes = (records: number, attempts: number): number =>
  largestChunkBytes(records) + attempts * (6 * maxAnswerBody + 1_024 + 128)
