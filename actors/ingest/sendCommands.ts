/**
 * Sending a batch of profile commands and waiting for every answer: a command whose answer says
 * nothing was decided (Failed: the store failed; Expired: it arrived late; or no answer in time) is
 * sent again with the same id, a few times with a backoff — its profile recognises it if it had been
 * applied after all. Past that, the run stops (ProfilesUnavailable) and is resumed later.
 */
import { Effect, Schedule, Schema } from "effect"
import type { Duration } from "effect"
import { CommandBus, type CommandOutcome, invalidCommand } from "../../domain/CommandBus.ts"
import type { EntityCommand } from "../../domain/entity.ts"

/** Profiles did not answer a batch after retries: the run stops (the job stays `translating`, resumed later). */
export class ProfilesUnavailable extends Schema.TaggedError<ProfilesUnavailable>()("ProfilesUnavailable", {
  jobId: Schema.String,
  cause: Schema.Defect()
}) {}

const retried = (reply: CommandOutcome) => reply._tag === "Failed" || reply._tag === "Expired"

/** Sends `commands`, again for those whose answer says nothing was decided (Failed, Expired, no answer), a few times. */
export const sendAll = (jobId: string, commands: ReadonlyArray<EntityCommand>, timeout: Duration.Input) =>
  Effect.gen(function*() {
    const bus = yield* CommandBus
    const replies = new Array<CommandOutcome>(commands.length)
    let open = commands.map((_, i) => i)
    yield* Effect.gen(function*() {
      const answers = yield* bus.sendBatchOutcomes(open.map((i) => commands[i]!), { timeout })
      open.forEach((i, k) => void (replies[i] = answers[k]!))
      open = open.filter((i) => retried(replies[i]!))
      if (open.length > 0) return yield* Effect.fail(new ProfilesUnavailable({ jobId, cause: replies[open[0]!] }))
    }).pipe(
      // A command the bus refuses to send is a bug in how it was built, not profiles away: sent again it is
      // refused again, and the job, resumed for ever, held its partner's queue (stop 26's outside attack).
      // As a defect it counts as the translator's crash, and the job fails once those run out.
      Effect.catchTag("CommandBusError", (error) => error.operation === invalidCommand ? Effect.die(error) : Effect.fail(error)),
      Effect.mapError((cause) => cause._tag === "ProfilesUnavailable" ? cause : new ProfilesUnavailable({ jobId, cause })),
      Effect.retry(Schedule.exponential("200 millis").pipe(Schedule.upTo({ times: 5 })))
    )
    return replies as ReadonlyArray<CommandOutcome>
  })

