/**
 * Wakes entities: the reminder scheduler of the shards this process owns fires each due reminder as
 * a `Wake` command on the bus, so it reaches its entity in the entity's normal command order. A fire
 * counts once the entity answered: a store failure or an expired command is retried by the
 * scheduler; a rejection (the entity no longer wants it, or its decider has no `Wake`) is logged and
 * dropped, since sending it again would be refused again.
 */
import { Effect, Schema } from "effect"
import { runReminders } from "../runtime/ReminderScheduler.ts"
import { OwnedShards } from "../runtime/Shards.ts"
import { CommandBus } from "../../domain/CommandBus.ts"
import { wakeCommand } from "../../domain/wake.ts"

/** The entity could not apply its Wake now (its store failed, or it came too late): fire it again. */
export class WakeNotApplied extends Schema.TaggedError<WakeNotApplied>()("WakeNotApplied", {
  entityType: Schema.String,
  entityId: Schema.String,
  reason: Schema.String
}) {}

/** Runs until interrupted, following the shards this process owns. */
export const runEntityReminders = Effect.gen(function*() {
  const owned = yield* OwnedShards
  const bus = yield* CommandBus
  return yield* runReminders({
    shards: owned.changes,
    // shorter than the scheduler's own fire timeout, so the bus's answer decides the outcome
    // Answered with its outcome alone: a full answer carries the entity, and a profile of 60,000 segments
    // made one of 10 MB that the bus could not carry (stop 23's third outside attack).
    fire: (reminder) =>
      bus.sendBatchOutcomes([wakeCommand(reminder)], { timeout: "5 seconds" }).pipe(
        Effect.flatMap(([reply]) => {
          if (reply === undefined) return Effect.fail(new WakeNotApplied({ entityType: reminder.entityType, entityId: reminder.entityId, reason: "no answer" }))
          switch (reply._tag) {
            case "Accepted":
              return Effect.void
            case "Rejected":
              return Effect.logWarning("a reminder was refused by its entity; dropped", { reminder, error: reply.error })
            case "Failed":
            case "Expired":
              return Effect.fail(new WakeNotApplied({ entityType: reminder.entityType, entityId: reminder.entityId, reason: reply._tag }))
          }
        })
      )
  })
})
