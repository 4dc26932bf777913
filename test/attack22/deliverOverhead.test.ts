/**
 * Outside attack (stop 22, the fourth on infra/nats/streamBytes.ts), on DELIVER's gate (`onePublisher`:
 * the package publisher's lease). The gate counted 128 bytes a message beside its body, but JetStream
 * stores the subject and headers too, and a chunk's subject (`deliver.<destination>.<lane>`) and
 * `Nats-Msg-Id` (`<destination>.<lane>.<packageId>.<seq>`) both carry the destination (up to 63
 * characters) and a refresh's package id: ~250 bytes a message. One holder with small chunks and
 * DELIVER_MAX_BYTES at its old least (1 MiB) ended at 1,345,840 bytes. And a lease does not fence: a
 * holder whose renewals time out keeps its job, so two may publish at once; each took the whole room it
 * read, and together they reached JetStream's backstop, which dropped acknowledged chunks (1 run of 2).
 * Now a message counts its subject and id (`messageBytes`), and a lease holder keeps the share but for
 * its first message after a read.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { makeStreamBytes } from "../../infra/nats/streamBytes.ts"
import { addGatedStream, gatedState, publishGated } from "../fixtures/gatedStream.ts"
import { layerTestNats } from "../fixtures/nats.ts"

const bound = 1_048_576
// a destination slug of the longest allowed (domain/entities/destination.ts), a refresh chunk's package id
const destination = "a" + "b".repeat(62)
const packageId = "refresh-3f2b8c1e-9a4d-4e7b-b1c2-7d9e0f1a2b3c"

/** `holders` lease holders' gates publishing chunks of `sizeOf(i)` bytes at once, until their gates refuse. */
const flood = (name: string, holders: number, sizeOf: (i: number) => number) =>
  Effect.gen(function*() {
    yield* addGatedStream(name, bound)
    const gates = yield* Effect.forEach(Array.from({ length: holders }), () => makeStreamBytes(name, { onePublisher: true }))
    const counts = { refused: 0, acknowledged: 0 }
    yield* Effect.forEach(gates, (gate, p) =>
      Effect.gen(function*() {
        // until the gate refuses a few in a row (each refusal a fresh read of the stream)
        for (let i = 0, refusedInARow = 0; refusedInARow < 3; i++) {
          const stored = yield* publishGated(gate, `${name.toLowerCase()}.${destination}.0`, "x".repeat(sizeOf(i)), `${destination}.0.${packageId}-${p}.${i}`)
          if (stored) {
            counts.acknowledged++
            refusedInARow = 0
          } else {
            counts.refused++
            refusedInARow++
            yield* Effect.sleep("300 millis")
          }
        }
      }), { concurrency: "unbounded", discard: true })
    return { ...counts, state: yield* gatedState(name) }
  })

layer(layerTestNats(), { excludeTestServices: true, timeout: 120_000 })("DELIVER's gate and what JetStream stores beside a chunk", (it) => {
  it.effect("one holder keeps the bound", () =>
    Effect.gen(function*() {
      const { state } = yield* flood("DELONE", 1, () => 300)
      assert.isAtMost(state.bytes, bound)
      assert.isAtLeast(state.bytes, bound * 0.8, "the holder filled its stream")
    }))

  it.effect("two holders at once stay under the backstop, and JetStream keeps every chunk it acknowledged", () =>
    Effect.gen(function*() {
      const { acknowledged, state } = yield* flood("DELTWO", 2, () => 100 + Math.floor(Math.random() * 450))
      assert.strictEqual(state.first_seq, 1, "none of the oldest dropped")
      assert.strictEqual(state.messages, acknowledged, "every acknowledged chunk kept")
      assert.isAtMost(state.bytes, bound * 1.25, `${state.bytes} bytes on the stream`)
    }))
})
