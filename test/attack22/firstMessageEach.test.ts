/**
 * Outside attack (stop 22) on infra/nats/streamBytes.ts: each process admits the first message after
 * its read whatever the others did since (`reading.admitted === 0`), up to the whole room that read
 * saw. With messages comparable to the bound (INGEST_MAX_BYTES may be as low as 1,024 while a real-time
 * body may be 1 MiB; three platform processes on one nats-server answered 202 to 145–149 KB against a
 * 100 KB INGEST bound), a few processes together reach JetStream's backstop (twice the bound), and a
 * message that passes nats-server 2.9's check by its body but not by its stored size makes it drop the
 * oldest message it had acknowledged: what the gate exists to prevent.
 *
 * Three gates stand for three processes, as in test/infra/streamBytes.test.ts; each reads the stream
 * itself, from a real nats-server.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { backstopBytes, makeStreamBytes, type StreamBytes } from "../../infra/nats/streamBytes.ts"
import { addGatedStream, gatedState, publishGated } from "../fixtures/gatedStream.ts"
import { layerTestNats } from "../fixtures/nats.ts"

const bound = 100_000

layer(layerTestNats(), { excludeTestServices: true, timeout: 120_000 })("three processes' gates, messages near the bound", (it) => {
  it.effect("never let the stream reach its backstop, so JetStream keeps every message it acknowledged", () =>
    Effect.gen(function*() {
      let lostRounds = 0
      let overBound = 0
      // the last message's size is swept over JetStream's window (body passes, stored size does not)
      for (let round = 0; round < 12; round++) {
        const name = `NEAR${round}`
        yield* addGatedStream(name, bound)
        const [p0, p1, p2] = yield* Effect.forEach([0, 1, 2], () => makeStreamBytes(name))
        let acknowledged = 0
        const send = (gate: StreamBytes, size: number, id: string) =>
          Effect.map(publishGated(gate, `near${round}.acme`, "y".repeat(size), `${round}-${id}`), (stored) => {
            if (stored) acknowledged++
          })
        // a small message, acknowledged: the oldest
        yield* send(p0, 200, "oldest")
        // every process's last read is over a second old
        yield* Effect.sleep("1100 millis")
        // p1 and p2 read the stream (for a request too big for it, refused): nothing admitted since their read
        yield* send(p1, bound, "too-big-1")
        yield* send(p2, bound, "too-big-2")
        // p0 and p1 each take about the whole room: p0 after its own read, p1 on its read of a moment ago
        yield* send(p0, bound - 500, "big-0")
        yield* send(p1, bound - 500, "big-1")
        // p2, on its read of a moment ago too, takes one more, sized near what JetStream has left
        const before = yield* gatedState(name)
        yield* send(p2, backstopBytes(bound) - before.bytes - 66 - 3 * round, "last")
        const state = yield* gatedState(name)
        if (state.bytes > bound * 1.5) overBound++
        if (state.messages !== acknowledged || state.first_seq !== 1) lostRounds++
      }
      assert.strictEqual(lostRounds, 0, "rounds of 12 where JetStream dropped a message it had acknowledged")
      assert.strictEqual(overBound, 0, "rounds of 12 where the stream went past one and a half times its bound")
    }))
})
