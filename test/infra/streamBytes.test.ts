/**
 * A stream's byte bound kept by its publishers (infra/nats/streamBytes.ts). On nats-server 2.9 a
 * discard-new stream at its own `max_bytes` dropped the oldest acknowledged messages when a new one
 * passed the check by its body but not by its stored size (about one 2,500-byte stream in four, measured
 * when this was written); filled through the gate, by one process or by several at once, JetStream's
 * bound (twice the gate's) is never reached and every acknowledged message stays.
 */
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Option } from "effect"
import { makeStreamBytes } from "../../infra/nats/streamBytes.ts"
import { addGatedStream, gatedState, publishGated } from "../fixtures/gatedStream.ts"
import { layerTestNats } from "../fixtures/nats.ts"

/** bodies of 150–550 bytes: each within an eighth of it, the most a process sends on one read of the stream */
const bound = 25_000

layer(layerTestNats(), { excludeTestServices: true, timeout: 60_000 })("a stream's bytes kept by its publishers", (it) => {
  it.effect("filled through the gate with bodies of random sizes, a discard-new work queue keeps every message it acknowledged, and holds about its bound", () =>
    Effect.gen(function*() {
      for (let round = 0; round < 20; round++) {
        const name = `GATED${round}`
        yield* addGatedStream(name, bound)
        const gate = yield* makeStreamBytes(name)
        let acknowledged = 0
        let refused = 0
        for (let i = 0; i < 100; i++) {
          const body = "y".repeat(150 + Math.floor(Math.random() * 400))
          if (yield* publishGated(gate, `gated${round}.d.0`, body, `${round}-${i}`)) acknowledged++
          else refused++
        }
        const state = yield* gatedState(name)
        assert.isAbove(refused, 0, "the bound was reached")
        assert.strictEqual(state.messages, acknowledged, `round ${round}: every acknowledged message is kept`)
        assert.strictEqual(state.first_seq, 1, `round ${round}: none of the oldest dropped`)
        assert.isAtMost(state.bytes, bound)
        assert.isAtLeast(state.bytes, bound * 0.75, `round ${round}: the gate let the stream fill`)
      }
    }))

  it.effect("gates of several processes flooding one stream at once keep it near its bound together, and every acknowledged message stays", () =>
    Effect.gen(function*() {
      const processes = 6
      for (let round = 0; round < 8; round++) {
        const name = `SHARED${round}`
        yield* addGatedStream(name, bound)
        // one gate a process: each knows only its own admissions and what it reads of the stream
        const gates = yield* Effect.forEach(Array.from({ length: processes }), () => makeStreamBytes(name))
        let acknowledged = 0
        let refused = 0
        yield* Effect.forEach(gates, (gate, p) =>
          Effect.gen(function*() {
            for (let i = 0; i < 24; i++) {
              const body = "z".repeat(150 + Math.floor(Math.random() * 250))
              if (yield* publishGated(gate, `shared${round}.d`, body, `${round}-${p}-${i}`)) acknowledged++
              else refused++
            }
          }), { concurrency: "unbounded", discard: true })
        const state = yield* gatedState(name)
        assert.isAbove(refused, 0, "the bound was reached")
        assert.strictEqual(state.messages, acknowledged, `round ${round}: every acknowledged message is kept`)
        assert.strictEqual(state.first_seq, 1, `round ${round}: none of the oldest dropped`)
        // each process may pass the bound by one message after its read, never by its own whole share of a second
        assert.isAtMost(state.bytes, bound + processes * (400 + 128), `round ${round}: ${state.bytes} bytes held`)
        assert.isAtLeast(state.bytes, bound / 2, `round ${round}: the gates let the stream fill`)
      }
    }))

  it.effect("a publish interrupted or failed gives its bytes back: the next read of the stream no longer counts them", () =>
    Effect.gen(function*() {
      const name = "GIVEN"
      yield* addGatedStream(name, bound)
      // read again a tenth of a second on
      const gate = yield* makeStreamBytes(name, { refreshMs: 100 })
      // a publish out holding an eighth of the bound: this process's share while it is out (however the stream reads)
      const started = yield* Deferred.make<void>()
      const eighth = bound / 8 - 128
      const hung = yield* Effect.forkChild(gate.admit(eighth, Effect.andThen(Deferred.succeed(started, undefined), Effect.never)))
      yield* Deferred.await(started)
      assert.isTrue(Option.isNone(yield* gate.admit(1_000, Effect.void)), "held by the publish still out")
      yield* Fiber.interrupt(hung)
      // the next read no longer counts it; a publish that fails is given back the same way
      yield* Effect.sleep("200 millis")
      assert.isTrue(Exit.isFailure(yield* Effect.exit(gate.admit(eighth, Effect.fail("refused by JetStream")))))
      yield* Effect.sleep("200 millis")
      assert.isTrue(Option.isSome(yield* gate.admit(eighth, Effect.void)), "given back")
    }))
})
