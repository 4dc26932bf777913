/**
 * /ready reflects the parts of the platform that can break while its process runs on: a stuck relay
 * (its lease held by a process that does not relay), an invalid relay checkpoint it cannot repair, and
 * a shard without a live owner, a bus that does not answer. /health stays 200 throughout: it is
 * liveness only.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option } from "effect"
import type { LightMyRequestResponse } from "fastify"
import { holdWhile } from "../../domain/Cluster.ts"
import { BucketNames, checkpointSubject, jobLeaseKey, shardLeaseKey, StreamNames } from "../../domain/subjects.ts"
import { openBucket } from "../../infra/nats/buckets.ts"
import { renewEveryMillis, takeLease } from "../../infra/nats/lease.ts"
import { Nats, tryNats } from "../../infra/nats/Nats.ts"
import { eventually, request } from "../fixtures/http.ts"
import { TestNatsServer } from "../fixtures/nats.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

const ready = request({ method: "GET", url: "/ready", key: null })

/** The value of an unlabelled series in /metrics text. */
const metric = (name: string) =>
  Effect.map(request({ method: "GET", url: "/metrics", key: null }), (res) => {
    const line = res.body.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(" ") + 1))
  })

/**
 * Takes the lease `key` away from whoever holds it (deletes its entry, takes it at once) for `holder`,
 * and holds it, renewing, without doing anything until the returned fiber is interrupted.
 */
const holdLease = (key: string, holder: string) =>
  Effect.gen(function*() {
    const kv = yield* openBucket(BucketNames.leases)
    yield* tryNats("delete lease", () => kv.delete(key))
    const lease = yield* takeLease(kv, key, holder)
    assert.isTrue(Option.isSome(lease), `took ${key}`)
    // detached: the test's end does not wait on it (see the interruption below)
    return yield* Effect.forkDetach(holdWhile(Option.getOrThrow(lease), Effect.never, renewEveryMillis))
  })

const assertNotReady = (res: LightMyRequestResponse, check: string, reason: RegExp) => {
  assert.strictEqual(res.statusCode, 503, res.body)
  assert.match(String(res.headers["content-type"]), /^application\/problem\+json/)
  assert.strictEqual(res.headers["retry-after"], "5")
  const problem = res.json() as { code: string; detail: string; checks: Record<string, string> }
  assert.strictEqual(problem.code, "not-ready")
  assert.match(problem.checks[check]!, reason)
  assert.include(problem.detail, `${check}: `)
  for (const [name, outcome] of Object.entries(problem.checks)) {
    if (name !== check) assert.strictEqual(outcome, "ok", `${name} is unaffected`)
  }
}

const health = Effect.map(request({ method: "GET", url: "/health", key: null }), (res) => res.statusCode)

describe("/ready", () => {
  it.live("a bus that does not answer (nats-server stopped with SIGSTOP): 503 naming nats, 200 again once it runs", () =>
    Effect.gen(function*() {
      yield* eventually(ready, (res) => res.statusCode === 200, "60 seconds")
      const { pid } = yield* TestNatsServer
      yield* Effect.acquireRelease(Effect.sync(() => process.kill(pid, "SIGSTOP")), () => Effect.sync(() => process.kill(pid, "SIGCONT")))
      // Waited for, not the first answer: a round trip already under way as the signal landed was once
      // answered (CI of stop 18: `nats: ok` beside another check failing in that moment).
      const natsCheck = (res: LightMyRequestResponse) => String((res.json() as { checks?: Record<string, string> }).checks?.nats)
      const res = yield* eventually(ready, (res) => res.statusCode === 503 && /no answer within/.test(natsCheck(res)), "60 seconds")
      assert.strictEqual(res.statusCode, 503, res.body)
      assert.match(String(res.headers["content-type"]), /^application\/problem\+json/)
      const problem = res.json() as { detail: string; checks: Record<string, string> }
      assert.match(problem.checks.nats!, /no answer within/)
      assert.include(problem.detail, "nats: ")
      assert.strictEqual(problem.checks.eventStore, "ok")
      assert.strictEqual(yield* health, 200)
      process.kill(pid, "SIGCONT")
      yield* eventually(ready, (res) => res.statusCode === 200, "90 seconds")
    }).pipe(Effect.scoped, Effect.provide(layerTestPlatform())), { timeout: 180_000 })

  it.live("a stuck relay: the lag in /metrics grows with every command, /ready answers 503 naming the relay, and recovers once it relays again", () =>
    Effect.gen(function*() {
      yield* eventually(ready, (res) => res.statusCode === 200, "60 seconds")
      const stuck = yield* holdLease(jobLeaseKey("relay"), "stuck-relay-1-abcdef")
      // The platform's relay stops at its next renewal, refused: until then, what is written is relayed.
      let written = 0
      const put = Effect.gen(function*() {
        written++
        const res = yield* request({ method: "PUT", url: `/v1/entities/advertiser/${written}`, body: { name: `a${written}` } })
        assert.strictEqual(res.statusCode, 201, res.body)
        yield* Effect.sleep("100 millis")
      })
      const lag = yield* eventually(Effect.andThen(put, metric("tributary_relay_lag_events")), (n) => n >= 1, "60 seconds")
      yield* put
      yield* put
      assert.isAtLeast(yield* metric("tributary_relay_lag_events"), lag + 2, "the lag grows while the relay is stuck")
      assertNotReady(yield* eventually(ready, (res) => res.statusCode === 503, "30 seconds"), "relay", /^stuck: \d+ events not in HISTORY/)
      assert.isAbove(yield* metric("tributary_relay_lag_seconds"), 1)
      assert.strictEqual(yield* health, 200)

      yield* Fiber.interrupt(stuck) // gives the lease back: the platform's relay takes it and catches up
      yield* eventually(ready, (res) => res.statusCode === 200, "60 seconds")
      assert.strictEqual(yield* metric("tributary_relay_lag_events"), 0)
    }).pipe(Effect.provide(layerTestPlatform({ RELAY_MAX_LAG: "1 second" }))), { timeout: 180_000 })

  it.live("an invalid relay checkpoint the relay cannot repair (HISTORY's tail is gone): 503 naming the relay's checkpoint", () =>
    Effect.gen(function*() {
      yield* eventually(ready, (res) => res.statusCode === 200, "60 seconds")
      const put = yield* request({ method: "PUT", url: "/v1/entities/advertiser/1", body: { name: "a" } })
      assert.strictEqual(put.statusCode, 201, put.body)
      const { manager, jetstream } = yield* Nats
      yield* eventually(tryNats("info", () => manager.streams.info(StreamNames.history)), (info) => info.state.messages === 1, "30 seconds")
      yield* tryNats("purge", () => manager.streams.purge(StreamNames.history))
      yield* tryNats("corrupt checkpoint", () => jetstream.publish(checkpointSubject("history"), "NaN"))
      yield* request({ method: "PUT", url: "/v1/entities/advertiser/2", body: { name: "b" } })
      assertNotReady(yield* eventually(ready, (res) => res.statusCode === 503, "60 seconds"), "relay", /checkpoint is invalid \(holds "NaN"\)/)
      assert.strictEqual(yield* health, 200)
    }).pipe(Effect.provide(layerTestPlatform())), { timeout: 180_000 })

  it.live("a shard whose lease is held by no live process: 503 naming the shard, 200 again once it has an owner", () =>
    Effect.gen(function*() {
      yield* eventually(ready, (res) => res.statusCode === 200, "60 seconds")
      const ghost = yield* holdLease(shardLeaseKey(3), "ghost-1-abcdef")
      // Waited for by its reason, the other checks ok: on a loaded machine one of them (the relay, just
      // started) may fail for a moment beside it.
      const orphan = /^1 of 4 shards have no live owner: 3$/
      const onlyOrphan = (res: LightMyRequestResponse) => {
        const checks = res.statusCode === 503 ? (res.json() as { checks?: Record<string, string> }).checks ?? {} : {}
        return orphan.test(String(checks.shards)) && Object.entries(checks).every(([name, outcome]) => name === "shards" || outcome === "ok")
      }
      assertNotReady(yield* eventually(ready, onlyOrphan, "30 seconds"), "shards", orphan)
      // Bounded: twice in CI (stops 22 and 23) this test sat until its 180 s timeout right after the ghost
      // gave the lease back (the platform took the shard again at once), and passed on its retry; where it
      // waited was not found. The ghost's lease is given back before its fiber ends, which is all this needs.
      const interrupted = yield* Effect.timeoutOption(Fiber.interrupt(ghost), "20 seconds")
      if (Option.isNone(interrupted)) yield* Effect.logWarning("the ghost lease holder did not end within 20 s of its interruption")
      yield* eventually(ready, (res) => res.statusCode === 200, "60 seconds")
    }).pipe(Effect.provide(layerTestPlatform({ SHARDS: "4" }))), { timeout: 180_000 })
})
