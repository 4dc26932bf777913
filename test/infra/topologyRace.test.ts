/**
 * Processes starting at the same instant each create or update the streams and the consumer accounts'
 * mirrors. READERS' `max_streams` is exactly its mirrors, and a process adding the last mirror just after
 * another one did got "maximum number of streams reached", not "name in use": its start failed (seen
 * with two `npm start` at once). Every one of them must start.
 */
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { ensureConsumerAccounts } from "../../infra/nats/consumerAccounts.ts"
import { Nats } from "../../infra/nats/Nats.ts"
import { ensureTopology } from "../../infra/nats/topology.ts"
import { startTestNatsServer } from "../fixtures/nats.ts"

const starters = 6

it.live("streams and mirrors made by several processes at the same instant: every one succeeds", () =>
  Effect.gen(function*() {
    for (let round = 0; round < 3; round++) {
      const { url, platform } = yield* startTestNatsServer
      const start = (i: number) =>
        Effect.gen(function*() {
          yield* ensureTopology()
          yield* ensureConsumerAccounts({ url, password: platform.password })
        }).pipe(Effect.provide(Nats.layer({ url, name: `starter-${i}`, credentials: platform })), Effect.result)
      const results = yield* Effect.forEach(Array.from({ length: starters }, (_, i) => i), start, { concurrency: "unbounded" })
      const failed = results.filter((r) => r._tag === "Failure")
      assert.deepStrictEqual(failed.map((r) => String(r)), [], `round ${round}`)
    }
  }).pipe(Effect.scoped), 120_000)
