/**
 * Outside attack (stop 22, the second on infra/nats/streamBytes.ts): a stream took one message of any
 * size when it was empty as read, "as JetStream would". Every process that read it empty at the same
 * moment sent one: eight platform processes on one nats-server, each given at once a real-time body of
 * ~89 KB whose control characters JSON writes six to a byte (~533 KB on INGEST, a third of a 1.6 MB
 * INGEST_MAX_BYTES), put six of them on INGEST, 3.2 MB, at JetStream's backstop; with the sizes tuned and
 * the translator slow, nats-server dropped a body it had answered 202 for (its job `stored` for good).
 * Now no process sends more than an eighth of the bound between two reads, empty stream or not, and the
 * configuration keeps every message within that (api/config.ts). Eight gates stand for the eight
 * processes, as in test/infra/streamBytes.test.ts, on a real nats-server.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { makeStreamBytes } from "../../infra/nats/streamBytes.ts"
import { addGatedStream, gatedState, publishGated } from "../fixtures/gatedStream.ts"
import { layerTestNats } from "../fixtures/nats.ts"

const bound = 100_000
const processes = 8

layer(layerTestNats(), { excludeTestServices: true, timeout: 60_000 })("eight processes' gates reading one stream empty at once", (it) => {
  it.effect("send no more than the bound together, however large each one's message, and JetStream keeps every message it acknowledged", () =>
    Effect.gen(function*() {
      // a third of the bound each (refused: over an eighth), then just under an eighth each (taken, all eight)
      for (const [round, size] of [[0, 33_000], [1, 12_300]] as const) {
        const name = `EMPTY${round}`
        yield* addGatedStream(name, bound)
        const gates = yield* Effect.forEach(Array.from({ length: processes }), () => makeStreamBytes(name))
        let acknowledged = 0
        yield* Effect.forEach(gates, (gate, p) =>
          Effect.map(publishGated(gate, `empty${round}.acme`, "y".repeat(size), `${round}-${p}`), (stored) => {
            if (stored) acknowledged++
          }), { concurrency: "unbounded", discard: true })
        const state = yield* gatedState(name)
        assert.isAtMost(state.bytes, bound, `round ${round}: ${state.bytes} bytes on the stream`)
        assert.strictEqual(state.messages, acknowledged, `round ${round}: every acknowledged message kept`)
        assert.strictEqual(acknowledged, round === 0 ? 0 : processes)
      }
    }))
})
