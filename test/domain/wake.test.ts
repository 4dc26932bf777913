import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { EntityCommand } from "../../domain/entity.ts"
import { Wake, wakeCommand } from "../../domain/wake.ts"

const reminder = { entityType: "ledger", entityId: "acct-1", shard: 3, dueAt: 1_790_000_000_000 }

describe("the bus command of a due reminder", () => {
  it("is a Wake at the due time for the reminder's entity, a valid bus envelope", () => {
    const command = wakeCommand(reminder)
    assert.deepStrictEqual(Schema.decodeUnknownSync(EntityCommand)(command), command)
    assert.deepStrictEqual(Schema.decodeUnknownSync(Wake)(command.action), { _tag: "Wake", at: reminder.dueAt })
    assert.strictEqual(command.entityType, "ledger")
    assert.strictEqual(command.entityId, "acct-1")
  })

  it("has the same command id when the same reminder fires again, and another for another due time or entity", () => {
    assert.strictEqual(wakeCommand(reminder).commandId, wakeCommand({ ...reminder }).commandId)
    assert.notStrictEqual(wakeCommand({ ...reminder, dueAt: reminder.dueAt + 1 }).commandId, wakeCommand(reminder).commandId)
    assert.notStrictEqual(wakeCommand({ ...reminder, entityId: "acct-2" }).commandId, wakeCommand(reminder).commandId)
    // a reminder set again for the same instant is another setting: another command
    assert.strictEqual(wakeCommand({ ...reminder, token: 7 }).commandId, wakeCommand({ ...reminder, token: 7 }).commandId)
    assert.notStrictEqual(wakeCommand({ ...reminder, token: 8 }).commandId, wakeCommand({ ...reminder, token: 7 }).commandId)
  })

  it("stays a valid bus envelope for an entity id of any length (a profile's reaches ~1,370 characters)", () => {
    const long = `cookie:~${"5Lit".repeat(340)}`
    const command = wakeCommand({ ...reminder, entityType: "userprofile", entityId: long, token: 2 ** 47 - 1 })
    assert.deepStrictEqual(Schema.decodeUnknownSync(EntityCommand)(command), command)
    assert.strictEqual(command.entityId, long)
    assert.notStrictEqual(command.commandId, wakeCommand({ ...reminder, entityType: "userprofile", entityId: `${long}A`, token: 2 ** 47 - 1 }).commandId)
  })
})
