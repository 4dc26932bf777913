/**
 * A lease on JetStream, so that among several processes exactly one does a job that must run once
 * (the relay). The holder's message on `lease.<job>` (stream LEASES, one message per subject) is the
 * lease: taken by publishing when the subject is empty, renewed every third of the TTL by publishing
 * again with the expected subject sequence, given back by deleting it. A holder that stops renewing
 * (crashed, cut off) loses it when its message expires (the stream's max_age); one that finds its
 * renewal refused stops the job at once. The lease does not fence on its own: between expiry and a
 * paused holder's next renewal both may run. Jobs keep their own fencing (the relay's HISTORY
 * publishes expect the stream's last sequence).
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import { randomBytes } from "node:crypto"
import { hostname } from "node:os"
import { Duration, Effect, Option, Schema } from "effect"
import { leaseSubject, StreamNames } from "../../domain/subjects.ts"
import { Nats, NatsError, tryNats } from "./Nats.ts"
import { leaseTtl } from "./topology.ts"

/** Someone else holds the lease now: the job must stop. */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", { job: Schema.String }) {}

const wrongSequence = (error: NatsError) =>
  error.cause instanceof JetStreamApiError && error.cause.code === JetStreamApiCodes.StreamWrongLastSequence

/**
 * Runs `job` only while holding the lease `name`, for ever: waits for the lease, runs the job, and
 * when the lease is lost interrupts the job and waits again. Gives the lease back when interrupted.
 */
export const withLease = <E, R>(name: string, job: Effect.Effect<never, E, R>) =>
  Effect.gen(function*() {
    const { jetstream, manager } = yield* Nats
    const subject = leaseSubject(name)
    const holder = `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`
    const renewEvery = Duration.toMillis(leaseTtl) / 3

    // Publishes the holder's renewal expecting `sequence` as the subject's last one (0: empty).
    const publish = (sequence: number) =>
      tryNats(`lease ${name}`, () => jetstream.publish(subject, holder, { expect: { lastSubjectSequence: sequence } })).pipe(
        Effect.map((ack) => ack.seq)
      )

    // The lease's current message, if its holder is this one (a renewal whose answer was lost).
    const ours = tryNats(`read lease ${name}`, () => manager.streams.getMessage(StreamNames.leases, { last_by_subj: subject })).pipe(
      Effect.map((message): Option.Option<number> => message !== null && message.string() === holder ? Option.some(message.seq) : Option.none()),
      Effect.catch(() => Effect.succeed(Option.none<number>()))
    )

    // Waits while someone else holds it.
    const acquire = Effect.gen(function*() {
      for (;;) {
        const taken = yield* publish(0).pipe(
          Effect.map(Option.some),
          Effect.catchIf(wrongSequence, () => ours)
        )
        if (Option.isSome(taken)) return taken.value
        yield* Effect.sleep(renewEvery)
      }
    })

    const hold = Effect.gen(function*() {
      let sequence = yield* acquire
      yield* Effect.logInfo(`lease ${name} taken`, { holder })
      // Given back by deleting its message — found by reading it, in case a renewal's answer was lost.
      yield* Effect.addFinalizer(() =>
        Effect.flatMap(ours, Option.match({
          onNone: () => Effect.void,
          onSome: (seq) => tryNats(`give back lease ${name}`, () => manager.streams.deleteMessage(StreamNames.leases, seq, false))
        })).pipe(Effect.ignore))
      const renew = Effect.forever(Effect.gen(function*() {
        yield* Effect.sleep(renewEvery)
        sequence = yield* publish(sequence).pipe(Effect.catchIf(wrongSequence, () => Effect.fail(new LeaseLost({ job: name }))))
      }))
      return yield* Effect.raceFirst(job, renew)
    }).pipe(Effect.scoped)

    return yield* hold.pipe(
      Effect.catchIf(
        (error): error is LeaseLost => error instanceof LeaseLost,
        () => Effect.logWarning(`lease ${name} lost; the job stopped and waits for it again`)
      ),
      Effect.forever
    )
  })
