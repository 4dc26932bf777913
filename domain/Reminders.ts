/**
 * Durable reminders: an entity asks to be woken at an instant (a membership expiring, a session
 * timing out). One reminder per entity: setting it again replaces it. Stored indexed by due time and
 * shard, so millions of them cost nothing until due; the owner of a shard fires its due reminders as
 * commands to the entity, which then arrive in the entity's normal command order.
 *
 * A reminder is identified by its entity, its `dueAt` and its `token`, which the store draws anew each
 * time the entity sets it (the receiver derives the wake-up command's id from them, so a reminder fired
 * twice is applied once, and one set again for the same instant after the first was applied is applied
 * too). Its next attempt starts at `dueAt`; a
 * scheduler whose fire failed postpones the attempt, keeping `dueAt`, so the retry is durable, holds
 * up no other reminder, and `next` tells a scheduler exactly when to wake.
 * Declared here; stored by infra/reminders/, fired by actors/runtime/ReminderScheduler.ts.
 */
import { Context, Schema } from "effect"
import type { Effect, Option, Stream } from "effect"

export const Reminder = Schema.Struct({
  entityType: Schema.String,
  entityId: Schema.String,
  /** the entity's shard (domain/shards.ts), so a shard's owner finds its own reminders */
  shard: Schema.Int,
  /** when to wake the entity, epoch milliseconds */
  dueAt: Schema.Int,
  /**
   * This setting of the reminder, drawn by the store at `set` (what a caller passes there is ignored);
   * absent on reminders set before tokens. Without it a profile whose membership expired at an instant,
   * then got another expiring at the same instant, was woken by a command it took for the first one
   * again: the second membership never expired (stop 26's outside attack).
   */
  token: Schema.optionalKey(Schema.Int)
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
  /**
   * Reminders of these shards whose next attempt is at or before `now` (epoch ms), earliest attempt
   * first, at most `limit`. Reads only those rows, however many reminders are set.
   */
  readonly due: (shards: ReadonlyArray<number>, now: number, limit: number) => Effect.Effect<ReadonlyArray<Reminder>, RemindersError>
  /** The earliest next attempt among these shards' reminders (its `dueAt`, unless postponed). */
  readonly next: (shards: ReadonlyArray<number>) => Effect.Effect<Option.Option<number>, RemindersError>
  /** Removes a fired reminder, unless the entity set a new one meanwhile (another `dueAt` or `token`). */
  readonly fired: (reminder: Reminder) => Effect.Effect<void, RemindersError>
  /**
   * Moves the next attempt of a reminder whose fire failed to `until` (epoch ms), keeping its
   * `dueAt`; does nothing if the entity set a new one meanwhile (another `dueAt` or `token`) or it is gone.
   */
  readonly postpone: (reminder: Reminder, until: number) => Effect.Effect<void, RemindersError>
  /**
   * Reminders as they are set through this instance (an implementation may add other processes'),
   * so that a sleeping scheduler wakes for a nearer one at once instead of at its next poll.
   * Only sets made after the stream starts are seen.
   */
  readonly changes: Stream.Stream<Reminder>
}>()("tributary/Reminders") {}
