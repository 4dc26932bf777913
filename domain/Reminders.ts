/**
 * Durable reminders: an entity asks to be woken at an instant (a membership expiring, a session
 * timing out). One reminder per entity: setting it again replaces it. Stored indexed by due time and
 * shard, so millions of them cost nothing until due; the owner of a shard fires its due reminders as
 * commands to the entity, which then arrive in the entity's normal command order.
 * Declared here; stored by infra/reminders/.
 */
import { Context, Schema } from "effect"
import type { Effect, Option } from "effect"

export const Reminder = Schema.Struct({
  entityType: Schema.String,
  entityId: Schema.String,
  /** the entity's shard (domain/shards.ts), so a shard's owner finds its own reminders */
  shard: Schema.Int,
  /** when to wake the entity, epoch milliseconds */
  dueAt: Schema.Int
}).annotate({ identifier: "Reminder" })
export type Reminder = typeof Reminder.Type

export class RemindersError extends Schema.TaggedError<RemindersError>()("RemindersError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export class Reminders extends Context.Service<Reminders, {
  /** Sets the entity's reminder, replacing any earlier one; durable once this succeeds. */
  readonly set: (reminder: Reminder) => Effect.Effect<void, RemindersError>
  /** Removes the entity's reminder, if any. */
  readonly cancel: (entityType: string, entityId: string) => Effect.Effect<void, RemindersError>
  /** Reminders of these shards due at or before `now` (epoch ms), earliest first, at most `limit`. */
  readonly due: (shards: ReadonlyArray<number>, now: number, limit: number) => Effect.Effect<ReadonlyArray<Reminder>, RemindersError>
  /** The earliest due time among these shards' reminders. */
  readonly next: (shards: ReadonlyArray<number>) => Effect.Effect<Option.Option<number>, RemindersError>
  /** Removes a fired reminder, unless the entity set a new one meanwhile (another `dueAt`). */
  readonly fired: (reminder: Reminder) => Effect.Effect<void, RemindersError>
}>()("tributary/Reminders") {}
