/**
 * Outside attack (stop 22, the third on infra/nats/streamBytes.ts): the share rule counts what a
 * process admitted on its current read only (`reading.admitted`, reset by every read), while a read
 * sees none of the process's publishes still out. A process whose publishes take longer than a read
 * (an EVENTS batch waits for its app's backlog read, a DLQ letter for its index reservation, an
 * INGEST publish for its retries) takes its eighth, reads again, finds the stream as empty as before
 * and takes another eighth: up to the whole bound in flight, by its own count alone. Three such
 * processes reading one empty stream together put three bounds on it, past JetStream's backstop (2×).
 * Three gates stand for the three processes, eight requests each, their publishes held until every
 * request was admitted or refused. Observed: 288,000 bytes admitted (all 24) against a bound of
 * 100,000, 193,200 on the stream; released one at a time with a last body of 6,690 bytes, JetStream
 * acknowledged 17 and kept 16 (sequence 1 dropped).
 */
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { makeStreamBytes } from "../../infra/nats/streamBytes.ts"
import { addGatedStream, gatedState, publishGated } from "../fixtures/gatedStream.ts"
import { layerTestNats } from "../fixtures/nats.ts"

const bound = 100_000
const processes = 3
const requests = 8
// within an eighth of the bound, its 128 bytes of framing counted
const size = 12_000

/**
 * `sizes[p]`: the requests of process `p` (a gate each), sent at once; each publish, once admitted, waits
 * for its turn (`turnOf`). Answers when every request was admitted or refused, with a way to wait for the
 * publishes to end, and what was admitted and acknowledged.
 */
const flood = (name: string, sizes: ReadonlyArray<ReadonlyArray<number>>, turnOf: (i: number) => Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    yield* addGatedStream(name, bound)
    const gates = yield* Effect.forEach(sizes, () => makeStreamBytes(name))
    const counts = { decided: 0, admittedBytes: 0, acknowledged: 0 }
    let i = 0
    const fibers = yield* Effect.forEach(gates, (gate, p) =>
      Effect.forEach(sizes[p]!, (bytes, r) => {
        const turn = turnOf(i++)
        let admitted = false
        const first = Effect.andThen(Effect.sync(() => {
          admitted = true
          counts.decided++
          counts.admittedBytes += bytes
        }), Deferred.await(turn))
        return Effect.forkChild(Effect.map(publishGated(gate, `${name.toLowerCase()}.p${p}`, "z".repeat(bytes), `${p}-${r}`, first), (stored) => {
          if (!admitted) counts.decided++
          else if (stored) counts.acknowledged++
        }))
      }))
    while (counts.decided < i) yield* Effect.sleep("10 millis")
    return { fibers: fibers.flat(), counts }
  })

layer(layerTestNats(), { excludeTestServices: true, timeout: 60_000 })("processes whose publishes are still out when they read again", (it) => {
  it.effect("send no more than the bound together, and JetStream keeps every message it acknowledged", () =>
    Effect.gen(function*() {
      const slow = yield* Deferred.make<void>()
      const { fibers, counts } = yield* flood("INFLIGHT", Array.from({ length: processes }, () => Array(requests).fill(size)), () => slow)
      yield* Deferred.succeed(slow, undefined)
      yield* Fiber.joinAll(fibers)
      const state = yield* gatedState("INFLIGHT")
      assert.isAtMost(counts.admittedBytes, bound, `${counts.admittedBytes} bytes admitted by ${processes} processes against a bound of ${bound}`)
      assert.isAtMost(state.bytes, bound, `${state.bytes} bytes on the stream`)
      assert.strictEqual(state.messages, counts.acknowledged, "every acknowledged message kept")
    }))

  it.effect("so that JetStream, past its backstop, drops none it acknowledged (a body that fits by its bytes but not as stored)", () =>
    Effect.gen(function*() {
      // two processes' eight requests of 12,000 bytes (12,079 stored each: 193,264), then a third's one
      // that fits the backstop's 6,736 bytes left by its body but not as stored
      const sizes = [Array(requests).fill(size), Array(requests).fill(size), [6_690]]
      const turns = sizes.flat().map(() => Deferred.makeUnsafe<void>())
      const { fibers, counts } = yield* flood("INFLIGHTLOSS", sizes, (i) => turns[i]!)
      // one at a time, in order
      for (let i = 0; i < turns.length; i++) {
        yield* Deferred.succeed(turns[i]!, undefined)
        yield* Fiber.join(fibers[i]!)
      }
      const state = yield* gatedState("INFLIGHTLOSS")
      assert.strictEqual(state.messages, counts.acknowledged, `${counts.acknowledged} acknowledged, ${state.messages} on the stream (first sequence ${state.first_seq}, ${state.bytes} bytes)`)
    }))
})
