/**
 * The relay's durable checkpoint: the global position of the last event whose HISTORY and SNAPSHOTS
 * messages JetStream acknowledged. Kept on JetStream (`checkpoint.<name>` in stream CHECKPOINTS, the
 * latest only), so whichever process holds the relay's lease resumes where the last one stopped,
 * whatever its DATA_DIR. Each save expects the message it read or wrote last: a save after another
 * relay moved the checkpoint fails, and the relay starts over from a fresh read.
 *
 * What is stored is decoded, never trusted: a message that is no position (anything published on the
 * subject, e.g. "NaN") fails the load with `CheckpointInvalid` instead of becoming a position that
 * stops the relay for good.
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import { Effect, Result, Schema } from "effect"
import { checkpointSubject, StreamNames } from "../domain/subjects.ts"
import { Nats, type NatsError, tryNats } from "./nats/Nats.ts"

/** The relay could not read or write its checkpoint, or could not read HISTORY's tail. */
export class RelayError extends Schema.TaggedError<RelayError>()("RelayError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** The checkpoint's message is no position; `stored` is (the start of) what it holds. */
export class CheckpointInvalid extends Schema.TaggedError<CheckpointInvalid>()("CheckpointInvalid", {
  stored: Schema.String,
  reason: Schema.String
}) {}

/** A stored checkpoint: a global position, as a non-negative safe integer in decimal. */
export const CheckpointPosition = Schema.FiniteFromString.pipe(Schema.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)))

const decodePosition = Schema.decodeUnknownResult(CheckpointPosition)

export interface RelayCheckpoint {
  /** 0 when nothing was relayed yet (positions start at 1) */
  readonly load: Effect.Effect<number, RelayError | CheckpointInvalid>
  /** Replaces what was loaded or saved last (an invalid checkpoint too). */
  readonly save: (position: number) => Effect.Effect<void, RelayError>
}

const toRelayError = (error: NatsError) => new RelayError({ operation: error.operation, cause: error.cause })

const noMessage = (error: NatsError) => error.cause instanceof JetStreamApiError && error.cause.code === JetStreamApiCodes.NoMessageFound

/** The checkpoint's message (its sequence, 0 when none) and what it decodes to. */
const fetch = (name: string) =>
  Effect.gen(function*() {
    const { manager } = yield* Nats
    const message = yield* tryNats("load checkpoint", () => manager.streams.getMessage(StreamNames.checkpoints, { last_by_subj: checkpointSubject(name) })).pipe(
      Effect.catchIf(noMessage, () => Effect.succeed(null)),
      Effect.mapError(toRelayError)
    )
    if (message === null) return { sequence: 0, position: Result.succeed(0) as Result.Result<number, CheckpointInvalid> }
    const stored = message.string()
    const position = Result.mapError(decodePosition(stored), (error) =>
      new CheckpointInvalid({ stored: stored.slice(0, 64), reason: error.message }))
    return { sequence: message.seq, position }
  })

/** What the checkpoint `name` holds now, for whoever watches the relay (it does not take part in saving). */
export const readCheckpoint = (name: string) => Effect.map(fetch(name), ({ position }) => position)

/** The checkpoint named `name` (one per job). */
export const openRelayCheckpoint = (name: string) =>
  Effect.gen(function*() {
    const { jetstream } = yield* Nats
    const nats = yield* Nats
    const subject = checkpointSubject(name)
    let sequence = 0 // of the checkpoint message last read or written; 0: none
    const load = Effect.flatMap(fetch(name).pipe(Effect.provideService(Nats, nats)), (read) => {
      // kept for an invalid one too: the next save then replaces it
      sequence = read.sequence
      return Effect.fromResult(read.position)
    })
    const save = (position: number) =>
      tryNats("save checkpoint", () => jetstream.publish(subject, String(position), { expect: { lastSubjectSequence: sequence } })).pipe(
        Effect.map((ack) => void (sequence = ack.seq)),
        Effect.mapError(toRelayError)
      )
    return { load, save } satisfies RelayCheckpoint
  })
