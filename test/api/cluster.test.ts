/**
 * Several platform processes on one nats-server and one DATA_DIR (real processes, real nats-server,
 * real SQLite): shards spread over them, a SIGKILLed process's shards taken over by the survivors,
 * each entity's commands applied once and in command order — also the command a killed owner had
 * pulled and not answered.
 */
import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Clock, Effect, Fiber, Layer } from "effect"
import type { Scope } from "effect"
import { EventStore } from "../../domain/EventStore.ts"
import { shardOf } from "../../domain/shards.ts"
import { StreamNames } from "../../domain/subjects.ts"
import { layerSqlite } from "../../infra/eventstore/sqlite.ts"
import { Nats, tryNats } from "../../infra/nats/Nats.ts"
import { eventually } from "../fixtures/http.ts"
import { layerTestNats, TestNatsServer } from "../fixtures/nats.ts"
import { call, type PlatformProcess, startPlatformProcess, stopProcess, waitUntilReady, platformEnv } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "cluster-admin-key-0123"
const SHARDS = 16
const allShards = Array.from({ length: SHARDS }, (_, i) => i)

interface ClusterView {
  readonly processes: ReadonlyArray<{ readonly id: string; readonly shards: ReadonlyArray<number> }>
}

/** Member ids are `<host>-<pid>-<random>`. */
const isProcess = (id: string, platform: PlatformProcess) => id.split("-").at(-2) === String(platform.pid)

const clusterView = (platform: PlatformProcess) =>
  Effect.map(call(platform.base, "GET", "/v1/admin/cluster", { key: ADMIN }), (answer) =>
    answer.status === 200 ? answer.body as ClusterView : { processes: [] })

/** The shards held by these processes, sorted. */
const heldBy = (view: ClusterView, platforms: ReadonlyArray<PlatformProcess>) =>
  view.processes.filter((p) => platforms.some((platform) => isProcess(p.id, platform))).flatMap((p) => p.shards).sort((a, b) => a - b)

/** Every shard is held by one of `platforms`, and each of them holds some. */
const spreadOver = (platforms: ReadonlyArray<PlatformProcess>) => (view: ClusterView) =>
  JSON.stringify(heldBy(view, platforms)) === JSON.stringify(allShards) &&
  platforms.every((platform) => view.processes.some((p) => isProcess(p.id, platform) && p.shards.length > 0))

/** The entity's name in each stored event, in revision order. */
const storedNames = (id: string) =>
  Effect.map(EventStore.use((store) => store.readStream(`advertiser-${id}`)), (events) =>
    events.map((event) => {
      const data = event.data as { fields?: { name?: string }; changes?: { name?: string } }
      return data.fields?.name ?? data.changes?.name ?? "?"
    }))

/** A nats-server of the test's own, a DATA_DIR, and the environment every process of the platform shares. */
const withSharedPlatform = <A, E>(
  test: (shared: { readonly env: Record<string, string>; readonly dataDir: string }) => Effect.Effect<A, E, Nats | TestNatsServer | EventStore | Scope.Scope>,
  commandTimeout: string
) =>
  Effect.gen(function*() {
    const dataDir = yield* tempDir("cluster")
    return yield* Effect.gen(function*() {
      const nats = yield* TestNatsServer
      const env = platformEnv(nats, dataDir, ADMIN, {
        SHARDS: String(SHARDS),
        COMMAND_TIMEOUT: commandTimeout
      })
      return yield* test({ env, dataDir })
    }).pipe(Effect.provide(Layer.merge(layerTestNats(), layerSqlite({ path: join(dataDir, "events.db") }))))
  }).pipe(Effect.scoped)

interface Ack {
  readonly k: number
  readonly revision: number
}

describe("several processes", () => {
  it.live("three processes under load, one joining and one SIGKILLed: every acknowledged command stored once and in order, the survivors own every shard", () =>
    withSharedPlatform(({ env, dataDir }) =>
      Effect.gen(function*() {
        // Two at first; the third joins under load (the others hand it its share while they work).
        const platforms = yield* Effect.all([0, 1].map(() => startPlatformProcess(env, dataDir)))
        yield* Effect.forEach(platforms, waitUntilReady, { discard: true, concurrency: "unbounded" })
        yield* eventually(clusterView(platforms[0]!), spreadOver(platforms), "60 seconds")

        // One client per entity, each sending its next command only once the previous one is
        // acknowledged, through the processes in turn; a failed call (its process died, its shard
        // changed hands) is sent again with the same Idempotency-Key.
        const ids = Array.from({ length: 30 }, (_, i) => String(100 + i))
        const acks = new Map<string, Array<Ack>>(ids.map((id) => [id, []]))
        const conflicts: Array<string> = []
        const alive = new Set(platforms)
        let loading = true
        const client = (id: string, offset: number) =>
          Effect.gen(function*() {
            for (let k = 0; loading; k++) {
              for (let attempt = 0; ; attempt++) {
                const targets = [...alive]
                const target = targets[(offset + k + attempt) % targets.length]!
                const answer = yield* call(target.base, k === 0 ? "PUT" : "PATCH", `/v1/entities/advertiser/${id}`, {
                  key: ADMIN,
                  body: { name: `v${k}` },
                  headers: { "idempotency-key": `${id}-${k}` }
                })
                if (answer.text.includes("conflicting appends")) conflicts.push(`${id} v${k}: ${answer.text}`)
                if (answer.status === 200 || answer.status === 201) {
                  acks.get(id)!.push({ k, revision: (answer.body as { revision: number }).revision })
                  break
                }
                if (attempt > 200) return yield* Effect.die(new Error(`${id} v${k}: no acknowledgement: ${answer.status} ${answer.text}`))
                yield* Effect.sleep("100 millis")
              }
              yield* Effect.sleep("10 millis")
            }
          })
        const total = () => [...acks.values()].reduce((n, list) => n + list.length, 0)
        const clients = yield* Effect.forkChild(Effect.forEach(ids, client, { concurrency: "unbounded", discard: true }))

        yield* eventually(Effect.sync(total), (n) => n >= 100, "60 seconds")
        const third = yield* startPlatformProcess(env, dataDir)
        yield* waitUntilReady(third)
        platforms.push(third)
        alive.add(third)
        yield* eventually(clusterView(platforms[0]!), spreadOver(platforms), "60 seconds")
        const joined = total()
        yield* eventually(Effect.sync(total), (n) => n >= joined + 100, "60 seconds")

        const victim = platforms[0]!
        const survivors = platforms.slice(1)
        const before = yield* clusterView(survivors[0]!)
        const victimShards = heldBy(before, [victim])
        assert.isNotEmpty(victimShards, "the killed process owned shards")
        assert.isTrue(ids.some((id) => victimShards.includes(shardOf(id, SHARDS))), "some entities were on its shards")
        const killedAt = yield* Clock.currentTimeMillis
        alive.delete(victim)
        yield* stopProcess(victim, "SIGKILL")

        yield* eventually(clusterView(survivors[0]!), spreadOver(survivors), "60 seconds")
        const takeoverMillis = (yield* Clock.currentTimeMillis) - killedAt
        console.log(`takeover after SIGKILL: ${takeoverMillis} ms (shards ${victimShards.join(",")})`)
        // the load goes on through the survivors, on every entity
        const acked = new Map(ids.map((id) => [id, acks.get(id)!.length]))
        yield* eventually(Effect.sync(() => ids.every((id) => acks.get(id)!.length >= acked.get(id)! + 3)), (done) => done, "60 seconds")
        loading = false
        yield* Fiber.join(clients)

        assert.deepStrictEqual(conflicts, [], "no command gave up after conflicting appends")
        for (const id of ids) {
          const list = acks.get(id)!
          list.forEach((ack, i) => {
            if (i > 0) assert.isAbove(ack.revision, list[i - 1]!.revision, `advertiser ${id}: revisions follow command order`)
          })
          const names = yield* storedNames(id)
          const ks = names.map((name) => Number(name.slice(1)))
          ks.forEach((k, i) => {
            if (i > 0) assert.isAbove(k, ks[i - 1]!, `advertiser ${id}: stored once each, in command order: ${names}`)
          })
          for (const ack of list) assert.strictEqual(names[ack.revision], `v${ack.k}`, `advertiser ${id}: v${ack.k} stored at its acknowledged revision`)
        }
        assert.isBelow(takeoverMillis, 30_000, "taken over well within the bound")
        yield* Effect.forEach(survivors, (platform) => stopProcess(platform, "SIGTERM"), { discard: true, concurrency: "unbounded" })
      }), "30 seconds"), { timeout: 240_000 })

  it.live("a command a killed owner had pulled and not answered is applied before newer commands to the same entity, by the next owner", () =>
    withSharedPlatform(({ env, dataDir }) =>
      Effect.gen(function*() {
        const platforms = yield* Effect.all([0, 1].map(() => startPlatformProcess(env, dataDir)))
        yield* Effect.forEach(platforms, waitUntilReady, { discard: true, concurrency: "unbounded" })
        yield* eventually(clusterView(platforms[0]!), spreadOver(platforms), "60 seconds")

        const id = "77"
        const shard = shardOf(id, SHARDS)
        const path = `/v1/entities/advertiser/${id}`
        const created = yield* call(platforms[0]!.base, "PUT", path, { key: ADMIN, body: { name: "v0" } })
        assert.strictEqual(created.status, 201, created.text)
        const view = yield* clusterView(platforms[0]!)
        const owner = platforms.find((platform) => view.processes.some((p) => isProcess(p.id, platform) && p.shards.includes(shard)))!
        const other = platforms.find((platform) => platform !== owner)!

        // The owner stops in its tracks; its outstanding pull takes the next command, which it never answers.
        owner.child.kill("SIGSTOP")
        const first = yield* Effect.forkChild(call(other.base, "PATCH", path, { key: ADMIN, body: { name: "A" } }))
        const { manager } = yield* Nats
        yield* eventually(
          tryNats("consumer info", () => manager.consumers.info(StreamNames.commands, `shard-${shard}`)),
          (info) => info.num_ack_pending >= 1,
          "20 seconds"
        )
        yield* stopProcess(owner, "SIGKILL")
        // Sent after the first one, through the survivor, while the first is still unanswered.
        const second = yield* call(other.base, "PATCH", path, { key: ADMIN, body: { name: "B" } })
        const firstAnswer = yield* Fiber.join(first)

        assert.strictEqual(firstAnswer.status, 200, firstAnswer.text)
        assert.strictEqual(second.status, 200, second.text)
        const revisionOf = (answer: { readonly body: unknown }) => (answer.body as { revision: number }).revision
        assert.strictEqual(revisionOf(firstAnswer), 1, "the command sent first is applied first")
        assert.strictEqual(revisionOf(second), 2)
        assert.deepStrictEqual(yield* storedNames(id), ["v0", "A", "B"])
        const now = yield* call(other.base, "GET", path, { key: ADMIN })
        assert.deepStrictEqual((now.body as { state: unknown }).state, { name: "B" })
        yield* stopProcess(other, "SIGTERM")
      }), "60 seconds"), { timeout: 180_000 })
})
