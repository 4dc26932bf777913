import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Actor from "../../../actors/runtime/Actor.ts"
import type { ActorFailed, ActorStopped } from "../../../actors/runtime/Actor.ts"
import * as Supervisor from "../../../actors/runtime/Supervisor.ts"
import { settle } from "../../fixtures/counterActor.ts"

class Broken extends Schema.TaggedError<Broken>()("Broken", {}) {}

/** A told message that carries its own way to be answered (like a bus command's reply). */
interface Job {
  readonly n: number
  readonly answer: Deferred.Deferred<string, ActorFailed | ActorStopped>
}

/** Every handler call fails: the actor restarts until it gives up. */
const alwaysFailing: Actor.Behavior<Job, Broken> = () => Effect.succeed(() => Effect.fail(new Broken()))

/** How the job was answered: its error's tag, "ok", or "unanswered". */
const outcome = (job: Job) =>
  Effect.gen(function*() {
    if (!(yield* Deferred.isDone(job.answer))) return "unanswered"
    return yield* Deferred.await(job.answer).pipe(Effect.as("ok"), Effect.catch((error) => Effect.succeed(error._tag)))
  })

describe("an actor that gives up", () => {
  it.effect("answers every told message: those it failed on with ActorFailed, those still queued and later ones with ActorStopped", () =>
    Effect.gen(function*() {
      const parent = yield* Supervisor.escalationSignal
      const ref = yield* Actor.make<Job, Broken>({
        kind: "test-undelivered",
        id: "u1",
        behavior: alwaysFailing,
        mailboxCapacity: 16,
        supervision: { backoff: { initial: "1 second", max: "1 second", jitter: 0 }, maxRestarts: 2, within: "1 minute" },
        onEscalate: parent.escalate,
        undelivered: (job, error) => Deferred.fail(job.answer, error).pipe(Effect.asVoid)
      })
      const jobs: Array<Job> = []
      for (let n = 0; n < 8; n++) {
        const job = { n, answer: yield* Deferred.make<string, ActorFailed | ActorStopped>() }
        jobs.push(job)
        yield* ref.tell(job)
      }
      // Three failures (the first and two restarts), then it gives up.
      for (let i = 0; i < 4; i++) {
        yield* settle
        yield* TestClock.adjust("1 second")
      }
      yield* settle
      const outcomes = yield* Effect.forEach(jobs, outcome)
      assert.deepStrictEqual(outcomes, ["ActorFailed", "ActorFailed", "ActorFailed", "ActorStopped", "ActorStopped", "ActorStopped", "ActorStopped", "ActorStopped"])
      const late = { n: 8, answer: yield* Deferred.make<string, ActorFailed | ActorStopped>() }
      assert.strictEqual((yield* Effect.flip(ref.tell(late)))._tag, "ActorStopped", "a tell after it gave up fails at once")
    }))
})
