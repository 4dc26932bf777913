/**
 * Keeps an entity's durable reminder in line with its state: when its decider's `wakeAt` changes
 * (after a commit, and once on activation, since a crash may have come between the two), the
 * reminder is set or cancelled through the Reminders port. Without `wakeAt`, or without the port,
 * nothing happens. A failure is logged and retried at the next change or activation: the entity's
 * events are already committed, and the reminder is derived from them.
 */
import { Effect, Option } from "effect"
import type { EntityKind } from "../../domain/EntityKind.ts"
import { Reminders } from "../../domain/Reminders.ts"
import { defaultShards, shardOf } from "../../domain/shards.ts"

export interface EntityReminder {
  readonly sync: (state: unknown) => Effect.Effect<void>
}

const unknown = Symbol("unknown")

export const entityReminder = (kind: EntityKind, id: string, shards = defaultShards) =>
  Effect.gen(function*() {
    const reminders = yield* Effect.serviceOption(Reminders)
    const wakeAt = kind.decider.wakeAt
    if (wakeAt === undefined || Option.isNone(reminders)) return { sync: () => Effect.void } satisfies EntityReminder
    const port = reminders.value
    // the due time last set (undefined: cancelled); unknown until the first sync of an incarnation
    let current: number | undefined | typeof unknown = unknown
    return {
      sync: (state) =>
        Effect.suspend(() => {
          const due = wakeAt(state)
          if (due === current) return Effect.void
          const change = due === undefined
            ? port.cancel(kind.type, id)
            : port.set({ entityType: kind.type, entityId: id, shard: shardOf(id, shards), dueAt: due })
          return change.pipe(
            Effect.tap(() => Effect.sync(() => void (current = due))),
            Effect.catch((error) =>
              Effect.andThen(Effect.sync(() => void (current = unknown)), Effect.logWarning("entity reminder not updated", { type: kind.type, id, error })))
          )
        })
    } satisfies EntityReminder
  })
