/**
 * The relay's durable checkpoint: the global position of the last event whose HISTORY and SNAPSHOTS
 * messages JetStream acknowledged. Kept on JetStream (`checkpoint.<name>` in stream CHECKPOINTS, the
 * latest only), so whichever process holds the relay's lease resumes where the last one stopped,
 * whatever its DATA_DIR. Each save expects the message it read or wrote last: a save after another
 * relay moved the checkpoint fails, and the relay starts over from a fresh read.
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import { Effect, Schema } from "effect"
import { checkpointSubject, StreamNames } from "../domain/subjects.ts"
import { Nats, type NatsError, tryNats } from "./nats/Nats.ts"

/** The relay could not read or write its checkpoint, or could not read HISTORY's tail. */
export class RelayError extends Schema.TaggedError<RelayError>()("RelayError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export interface RelayCheckpoint {
  /** 0 when nothing was relayed yet (positions start at 1) */
  readonly load: Effect.Effect<number, RelayError>
  readonly save: (position: number) => Effect.Effect<void, RelayError>
}

const toRelayError = (error: NatsError) => new RelayError({ operation: error.operation, cause: error.cause })

const noMessage = (error: NatsError) => error.cause instanceof JetStreamApiError && error.cause.code === JetStreamApiCodes.NoMessageFound

/** The checkpoint named `name` (one per job). */
export const openRelayCheckpoint = (name: string) =>
  Effect.gen(function*() {
    const { jetstream, manager } = yield* Nats
    const subject = checkpointSubject(name)
    let sequence = 0 // of the checkpoint message last read or written; 0: none
    const load = tryNats("load checkpoint", () => manager.streams.getMessage(StreamNames.checkpoints, { last_by_subj: subject })).pipe(
      Effect.catchIf(noMessage, () => Effect.succeed(null)),
      Effect.map((message) => {
        sequence = message?.seq ?? 0
        return message === null ? 0 : Number(message.string())
      }),
      Effect.mapError(toRelayError)
    )
    const save = (position: number) =>
      tryNats("save checkpoint", () => jetstream.publish(subject, String(position), { expect: { lastSubjectSequence: sequence } })).pipe(
        Effect.map((ack) => void (sequence = ack.seq)),
        Effect.mapError(toRelayError)
      )
    return { load, save } satisfies RelayCheckpoint
  })
