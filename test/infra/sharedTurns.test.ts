/**
 * Turns shared by every process (infra/nats/sharedTurns.ts) on a real nats-server: two holders (as two
 * processes have, each its own holder id and queue) never hold one name's turn together, other names
 * go on meanwhile, a turn held past the wait answers TurnBusy, and a turn given back is taken at once; a
 * turn says until when it is surely its holder's (the lease's TTL from when it was asked for).
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { makeSharedTurns } from "../../infra/nats/sharedTurns.ts"
import { layerTestNats } from "../fixtures/nats.ts"

layer(layerTestNats(), { excludeTestServices: true, timeout: 60_000 })("turns shared by every process", (it) => {
  it.effect("one holder of a name at a time across processes; other names meanwhile; TurnBusy past the wait", () =>
    Effect.gen(function*() {
      const [a, b] = yield* Effect.all([makeSharedTurns("3 seconds"), makeSharedTurns("3 seconds")])
      let holding = 0
      let most = 0
      const work = Effect.acquireUseRelease(
        Effect.sync(() => (most = Math.max(most, ++holding))),
        () => Effect.sleep("30 millis"),
        () => Effect.sync(() => void holding--)
      )
      // twelve at once, half in each "process"
      yield* Effect.forEach(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b)), (turns) => Effect.acquireUseRelease(turns.take("lanes"), () => work, (turn) => turn.release), { concurrency: "unbounded", discard: true })
      assert.strictEqual(most, 1, "two held the turn together")

      // held by a: b waits, and gives up past its wait; another name is free meanwhile
      const asked = Date.now()
      const held = yield* a.take("lanes")
      // surely a's until the lease it wrote could expire: the TTL (10 s) after it was asked for, not later
      assert.isAtLeast(held.until, asked + 10_000)
      assert.isAtMost(held.until, Date.now() + 10_000)
      const started = Date.now()
      const busy = yield* Effect.flip(b.take("lanes"))
      assert.strictEqual(busy._tag, "TurnBusy")
      assert.isAtLeast(Date.now() - started, 2_500)
      const other = yield* b.take("refresh.d1")
      yield* other.release
      // given back: taken at once
      yield* held.release
      const again = Date.now()
      const next = yield* b.take("lanes")
      assert.isBelow(Date.now() - again, 1_000)
      yield* next.release
    }))
})
