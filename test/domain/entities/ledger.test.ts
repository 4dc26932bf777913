import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import type { DecideContext } from "../../../domain/Decider.ts"
import { ledger, type LedgerCommand, type LedgerEvent } from "../../fixtures/ledger.ts"

const context: DecideContext = { entityType: "ledger", entityId: "acct-1" }
const given = (...events: ReadonlyArray<LedgerEvent>) => events.reduce(ledger.evolve, ledger.initialState())
const when = (state: ReturnType<typeof given>, command: LedgerCommand) => ledger.decide(command, state, context)
const thenEvents = (result: ReturnType<typeof when>, events: ReadonlyArray<LedgerEvent>) => assert.deepStrictEqual(result, Result.succeed(events))
const thenRefused = (result: ReturnType<typeof when>) =>
  assert.strictEqual(Result.isFailure(result) ? result.failure._tag : "accepted", "CommandRefused")

describe("a decider that is not a record (ledger)", () => {
  it("deposits and withdraws within the balance", () => {
    thenEvents(when(given(), { _tag: "Deposit", amount: 10 }), [{ _tag: "Deposited", amount: 10 }])
    thenEvents(when(given({ _tag: "Deposited", amount: 10 }), { _tag: "Withdraw", amount: 4 }), [{ _tag: "Withdrawn", amount: 4 }])
  })

  it("refuses to go below zero", () => {
    thenRefused(when(given({ _tag: "Deposited", amount: 10 }), { _tag: "Withdraw", amount: 11 }))
  })

  it("refuses withdrawals during a hold, wants waking when it ends, and is released by a Wake at or after it", () => {
    const held = given({ _tag: "Deposited", amount: 10 }, { _tag: "HoldPlaced", until: 5_000 })
    thenRefused(when(held, { _tag: "Withdraw", amount: 1 }))
    assert.strictEqual(ledger.wakeAt?.(held), 5_000)
    thenEvents(when(held, { _tag: "Wake", at: 4_999 }), [])
    thenEvents(when(held, { _tag: "Wake", at: 5_000 }), [{ _tag: "HoldReleased" }])
    assert.strictEqual(ledger.wakeAt?.(given({ _tag: "HoldPlaced", until: 5_000 }, { _tag: "HoldReleased" })), undefined)
  })

  it("records nothing for a hold it already has", () => {
    thenEvents(when(given({ _tag: "HoldPlaced", until: 7 }), { _tag: "Hold", until: 7 }), [])
  })
})
