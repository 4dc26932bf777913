/**
 * Waking an entity: a due reminder (domain/Reminders.ts) reaches its entity as an ordinary `Wake`
 * command on the bus, in the entity's normal command order. A decider that declares `wakeAt` handles
 * `Wake` among its commands. The command id is derived from the entity, the due time and the
 * reminder's setting (its token), so a reminder fired twice (a crash between firing and removing it)
 * is applied once, and one set again for the same instant is applied again.
 */
import { Schema } from "effect"
import { commandIdRef, type EntityCommand } from "./entity.ts"
import type { Reminder } from "./Reminders.ts"

/** `at`: the instant the entity asked to be woken at (epoch ms), not the time it fired. */
export const Wake = Schema.TaggedStruct("Wake", { at: Schema.Int })
export type Wake = typeof Wake.Type

/** The bus command that delivers a due reminder to its entity. */
export const wakeCommand = (reminder: Reminder): EntityCommand => {
  const commandId = `wake:${reminder.entityType}:${commandIdRef(reminder.entityId)}:${reminder.dueAt}${reminder.token === undefined ? "" : `:${reminder.token}`}`
  return {
    commandId,
    correlationId: commandId,
    entityType: reminder.entityType,
    entityId: reminder.entityId,
    action: Schema.encodeSync(Wake)({ _tag: "Wake", at: reminder.dueAt })
  }
}
