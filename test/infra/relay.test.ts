import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { Effect, Fiber, Layer, Logger, Metric, Result, Schedule } from "effect"
import type { Duration } from "effect"
import { EventStore } from "../../domain/EventStore.ts"
import { toEnvelopes } from "../../domain/envelope.ts"
import { checkpointSubject, historySubject, snapshotSubject, StreamNames } from "../../domain/subjects.ts"
import { layerSqlite } from "../../infra/eventstore/sqlite.ts"
import { Nats, tryNats } from "../../infra/nats/Nats.ts"
import { checkpointsRepaired, commitToPublish, eventsRelayed, relayLag, runRelay, undecodableEvents } from "../../infra/relay.ts"
import { openRelayCheckpoint, readCheckpoint } from "../../infra/relayCheckpoint.ts"
import { appendEntityEvents, expectedSnapshot } from "../fixtures/entityEvents.ts"
import type { EntityRef } from "../fixtures/entityEvents.ts"
import { lastOnSubject, streamMessages } from "../fixtures/jetstreamContents.ts"
import { layerTestNats, TestNatsServer } from "../fixtures/nats.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const relayProcess = fileURLToPath(new URL("../fixtures/relayProcess.ts", import.meta.url))
const leasedRelayProcess = fileURLToPath(new URL("../fixtures/leasedRelayProcess.ts", import.meta.url))

/** A temp dir with the event store file, a fresh nats-server with the streams, and paths for the relay. */
const withPlatform = <A, E>(
  test: (paths: { readonly dir: string; readonly events: string }) => Effect.Effect<A, E, EventStore | Nats | TestNatsServer>,
  duplicateWindow: Duration.Input = "2 minutes"
) =>
  Effect.gen(function*() {
    const dir = yield* tempDir("relay")
    const paths = { dir, events: join(dir, "events.db") }
    return yield* test(paths).pipe(
      Effect.provide(Layer.mergeAll(layerSqlite({ path: paths.events }), layerTestNats({ duplicateWindow })))
    )
  }).pipe(Effect.scoped)

/** Polls until `check` holds (every 50 ms, up to `seconds`); fails with the last value otherwise. */
const eventually = <A, E, R>(effect: Effect.Effect<A, E, R>, check: (a: A) => boolean, seconds = 30) =>
  effect.pipe(
    Effect.filterOrFail(check, (a) => new Error(`condition not met; last value: ${JSON.stringify(a)}`)),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: seconds * 20 })))
  )

const messageCount = (stream: string) =>
  Effect.gen(function*() {
    const { manager } = yield* Nats
    const info = yield* tryNats("info", () => manager.streams.info(stream))
    return info.state.messages
  })

/** What HISTORY must hold: every Tributary event of the store, once, in position order. */
const assertHistoryMatchesStore = Effect.gen(function*() {
  const store = yield* EventStore
  const expected = toEnvelopes(yield* store.readAll())
  const history = yield* streamMessages(StreamNames.history)
  assert.strictEqual(history.length, expected.length, "every event exactly once")
  history.forEach((message, i) => {
    const envelope = expected[i]!
    assert.deepStrictEqual(message.body, envelope)
    assert.strictEqual(message.subject, historySubject(envelope.entityType, envelope.entityId))
    assert.strictEqual(message.headers["Nats-Msg-Id"], envelope.eventId)
    assert.strictEqual(message.headers["Tributary-Revision"], String(envelope.revision))
    assert.strictEqual(message.headers["Tributary-Position"], String(envelope.position))
    assert.strictEqual(message.headers["Tributary-Trace-Id"], envelope.correlationId)
  })
  return expected.length
})

const assertSnapshotsMatchStore = (entities: ReadonlyArray<EntityRef>) =>
  Effect.forEach(entities, (entity) =>
    Effect.gen(function*() {
      const message = yield* lastOnSubject(StreamNames.snapshots, snapshotSubject(entity.type, entity.id))
      assert.deepStrictEqual(message?.body, yield* expectedSnapshot(entity), `snapshot of ${entity.id}`)
    }), { discard: true })

const storedCheckpoint = Effect.flatMap(openRelayCheckpoint("history"), (c) => c.load)
/** The stored checkpoint, -1 while it is invalid. */
const checkpointNow = Effect.map(readCheckpoint("history"), Result.getOrElse(() => -1))

const entities: ReadonlyArray<EntityRef> = [
  { type: "advertiser", id: "1" },
  { type: "advertiser", id: "18446744073709551615" },
  { type: "campaign", id: "7" }
]

describe("history relay", () => {
  it.live("publishes events to HISTORY in commit order with envelope and headers, and the latest state to SNAPSHOTS", () =>
    withPlatform(() =>
      Effect.gen(function*() {
        const store = yield* EventStore
        const before = (yield* Metric.value(eventsRelayed)).count
        const latenciesBefore = (yield* Metric.value(commitToPublish)).count
        const relay = yield* Effect.forkChild(runRelay({ checkpointEvery: "50 millis" }))
        for (let round = 0; round < 4; round++) {
          for (const entity of entities) yield* appendEntityEvents(entity, 1 + (round % 2))
        }
        // an event without Tributary metadata is not an entity event: it is skipped
        yield* store.appendToStream("foreign-1", [{ eventId: "foreign-event", type: "Other", data: {}, metadata: {} }], "any")
        yield* appendEntityEvents(entities[0]!, 1)
        yield* eventually(messageCount(StreamNames.history), (n) => n >= 19)
        const count = yield* assertHistoryMatchesStore
        assert.strictEqual(count, 19)
        yield* eventually(storedCheckpoint, (c) => c === 20)
        yield* assertSnapshotsMatchStore(entities)
        assert.strictEqual((yield* messageCount(StreamNames.snapshots)), entities.length)
        assert.strictEqual((yield* Metric.value(eventsRelayed)).count - before, 19)
        assert.strictEqual((yield* Metric.value(commitToPublish)).count - latenciesBefore, 19)
        assert.strictEqual((yield* Metric.value(relayLag)).value, 0)
        yield* Fiber.interrupt(relay)
      })))

  it.live("catches up with events appended before it started", () =>
    withPlatform(() =>
      Effect.gen(function*() {
        for (let i = 0; i < 30; i++) yield* appendEntityEvents(entities[i % entities.length]!, 1 + (i % 3))
        const relay = yield* Effect.forkChild(runRelay({ maxBatch: 16, checkpointEvery: "50 millis" }))
        yield* eventually(messageCount(StreamNames.history), (n) => n >= 60)
        assert.strictEqual(yield* assertHistoryMatchesStore, 60)
        yield* assertSnapshotsMatchStore(entities)
        yield* Fiber.interrupt(relay)
      })))

  it.live("resumes from its checkpoint after a restart", () =>
    withPlatform(() =>
      Effect.gen(function*() {
        const { manager } = yield* Nats
        const first = yield* Effect.forkChild(runRelay({ checkpointEvery: "50 millis" }))
        for (const entity of entities) yield* appendEntityEvents(entity, 2)
        yield* eventually(storedCheckpoint, (c) => c === 6)
        yield* Fiber.interrupt(first)
        // Forget HISTORY's contents (sequence numbers stay) and outlive the duplicate window: only the
        // checkpoint now says what was relayed. Starting over would publish the 6 old events again.
        yield* tryNats("purge", () => manager.streams.purge(StreamNames.history))
        yield* Effect.sleep("300 millis")
        for (const entity of entities) yield* appendEntityEvents(entity, 1)
        const second = yield* Effect.forkChild(runRelay({ checkpointEvery: "50 millis" }))
        yield* eventually(storedCheckpoint, (c) => c === 9)
        const history = yield* streamMessages(StreamNames.history)
        assert.deepStrictEqual(history.map((m) => m.headers["Tributary-Position"]), ["7", "8", "9"])
        assert.deepStrictEqual(history.map((m) => m.seq), [7, 8, 9])
        yield* assertSnapshotsMatchStore(entities)
        yield* Fiber.interrupt(second)
      }), "100 millis"))

  it.live("does not re-publish what HISTORY already holds when the checkpoint lags, even past the duplicate window", () =>
    withPlatform(() =>
      Effect.gen(function*() {
        const first = yield* Effect.forkChild(runRelay({ checkpointEvery: "50 millis" }))
        for (const entity of entities) yield* appendEntityEvents(entity, 2)
        yield* eventually(storedCheckpoint, (c) => c === 6)
        yield* Fiber.interrupt(first)
        const snapshotsSeq = Nats.use(({ manager }) => tryNats("info", () => manager.streams.info(StreamNames.snapshots))).pipe(
          Effect.map((info) => info.state.last_seq)
        )
        const before = yield* snapshotsSeq
        // a crash after the publish but before the checkpoint: the checkpoint is behind HISTORY
        yield* Nats.use(({ manager }) =>
          tryNats("forget checkpoint", () => manager.streams.purge(StreamNames.checkpoints, { filter: checkpointSubject("history") })))
        yield* Effect.sleep("300 millis")
        yield* appendEntityEvents(entities[2]!, 1)
        const second = yield* Effect.forkChild(runRelay({ checkpointEvery: "50 millis" }))
        yield* eventually(storedCheckpoint, (c) => c === 7)
        assert.strictEqual(yield* assertHistoryMatchesStore, 7)
        yield* assertSnapshotsMatchStore(entities)
        // SNAPSHOTS already held the others' states: only the new event's entity was published again
        assert.strictEqual((yield* snapshotsSeq) - before, 1)
        yield* Fiber.interrupt(second)
      }), "100 millis"))
})

/** Starts the relay in its own process (`--lease`: under the relay's lease, as the platform runs it); SIGKILLs it if the test ends first. */
const startRelayProcess = (paths: { readonly events: string }, ...flags: ReadonlyArray<"--lease">) =>
  Effect.gen(function*() {
    const { url, platform } = yield* TestNatsServer
    return yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--no-warnings", relayProcess, url, paths.events, ...flags], {
          stdio: ["ignore", flags.length > 0 ? "pipe" : "ignore", "inherit"],
          env: { ...process.env, NATS_USER: platform.user, NATS_PASSWORD: platform.password }
        })
      ),
      (child) => Effect.sync(() => void child.kill("SIGKILL"))
    )
  })

/** What a relay process printed so far (see test/fixtures/relayProcess.ts). */
const printed = (child: ChildProcess) => {
  const output = { text: "" }
  child.stdout?.on("data", (chunk: Buffer) => void (output.text += chunk.toString()))
  return output
}

const killAndWait = (child: ChildProcess, signal: NodeJS.Signals) =>
  Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill(signal)
  })

describe("history relay under crashes", () => {
  it.live("holds every event exactly once, in order, and each entity's final state after repeated SIGKILLs", () =>
    withPlatform((paths) =>
      Effect.gen(function*() {
        const store = yield* EventStore
        const many = Array.from({ length: 25 }, (_, i): EntityRef => ({ type: i % 2 ? "campaign" : "advertiser", id: String(1000 + i) }))
        let writing = true
        const writer = yield* Effect.forkChild(Effect.gen(function*() {
          while (writing) {
            yield* appendEntityEvents(many[Math.floor(Math.random() * many.length)]!, 1 + Math.floor(Math.random() * 3))
            yield* Effect.sleep(`${2 + Math.floor(Math.random() * 6)} millis`)
          }
        }))
        const progress: Array<number> = []
        for (let kill = 0; kill < 6; kill++) {
          yield* Effect.scoped(Effect.gen(function*() {
            const before = yield* messageCount(StreamNames.history)
            const child = yield* startRelayProcess(paths)
            // Killed mid-stream: once it is publishing (however long a loaded machine takes to start
            // a process), at a random moment of the next 600 ms.
            yield* eventually(messageCount(StreamNames.history), (count) => count > before, 60)
            yield* Effect.sleep(`${Math.floor(Math.random() * 600)} millis`)
            yield* killAndWait(child, "SIGKILL")
          }))
          progress.push(yield* messageCount(StreamNames.history))
        }
        writing = false
        yield* Fiber.join(writer)
        // each killed relay did publish (the kills landed mid-stream, not before any work)
        assert.isTrue(progress.every((count, i) => count > (progress[i - 1] ?? 0)), `progress ${progress}`)
        const head = (yield* store.headPosition) ?? 0
        assert.isAbove(head, progress[progress.length - 1]!, "events were left for the last relay")

        yield* Effect.scoped(Effect.gen(function*() {
          const child = yield* startRelayProcess(paths)
          yield* eventually(storedCheckpoint, (c) => c === head, 60)
          yield* killAndWait(child, "SIGTERM")
        }))
        assert.strictEqual(yield* assertHistoryMatchesStore, head)
        yield* assertSnapshotsMatchStore(many)
      }), "100 millis"), { timeout: 120_000 })
})

describe("two relays started at once", () => {
  it.live("exactly one relays, the other takes over when it is SIGKILLed, and HISTORY holds every event once, in order", () =>
    withPlatform((paths) =>
      Effect.scoped(Effect.gen(function*() {
        const store = yield* EventStore
        const many = Array.from({ length: 10 }, (_, i): EntityRef => ({ type: i % 2 ? "campaign" : "advertiser", id: String(2000 + i) }))
        for (const entity of many) yield* appendEntityEvents(entity, 3)
        const [a, b] = [yield* startRelayProcess(paths, "--lease"), yield* startRelayProcess(paths, "--lease")]
        const [outA, outB] = [printed(a), printed(b)]
        const relaying = () => [a, b].filter((child, i) => [outA, outB][i]!.text.includes(`relaying ${child.pid}`))

        // both up and asking for the lease; writes go on meanwhile
        yield* eventually(Effect.sync(() => [a, b].every((child, i) => [outA, outB][i]!.text.includes(`started ${child.pid}`))), (up) => up, 90)
        for (const entity of many) yield* appendEntityEvents(entity, 2)
        const head = (yield* store.headPosition) ?? 0
        yield* eventually(storedCheckpoint, (c) => c === head, 90)
        assert.strictEqual(yield* assertHistoryMatchesStore, head)
        const first = relaying()
        assert.strictEqual(first.length, 1, `exactly one relays: ${outA.text} | ${outB.text}`)
        const other = first[0] === a ? b : a
        assert.isNull(other.exitCode, "the other one waits, alive")

        // the relaying one dies without giving its lease back: the other relays once it expires
        yield* killAndWait(first[0]!, "SIGKILL")
        for (const entity of many) yield* appendEntityEvents(entity, 1)
        const later = (yield* store.headPosition) ?? 0
        yield* eventually(storedCheckpoint, (c) => c === later, 90)
        assert.deepStrictEqual(relaying().map((child) => child.pid).sort(), [a.pid, b.pid].sort(), "the other one took over")
        assert.strictEqual(yield* assertHistoryMatchesStore, later)
        yield* assertSnapshotsMatchStore(many)
        yield* killAndWait(other, "SIGTERM")
      }))), { timeout: 180_000 })
})

describe("history relay against bad input", () => {
  it.live("replaces an invalid checkpoint (\"NaN\" published on its subject) from HISTORY's tail: HISTORY goes on, nothing twice", () =>
    withPlatform(() =>
      Effect.gen(function*() {
        const relay = yield* Effect.forkChild(runRelay({ checkpointEvery: "50 millis" }))
        for (const entity of entities) yield* appendEntityEvents(entity, 2)
        yield* eventually(checkpointNow, (c) => c === 6)
        const repairs = (yield* Metric.value(checkpointsRepaired)).count
        // what a reply directed onto the checkpoint's subject stored (issue 6, item 1)
        yield* Nats.use(({ jetstream }) => tryNats("corrupt checkpoint", () => jetstream.publish(checkpointSubject("history"), "NaN")))
        for (const entity of entities) yield* appendEntityEvents(entity, 1)
        yield* eventually(checkpointNow, (c) => c === 9)
        assert.strictEqual(yield* assertHistoryMatchesStore, 9)
        yield* assertSnapshotsMatchStore(entities)
        assert.isAtLeast((yield* Metric.value(checkpointsRepaired)).count - repairs, 1)
        yield* Fiber.interrupt(relay)
      })))

  it.live("counts and logs each undecodable event once, also when a restarted relay reads it again", () =>
    withPlatform(() =>
      Effect.gen(function*() {
        const store = yield* EventStore
        const logged: Array<string> = []
        const collect = Logger.layer([Logger.make((options) => void logged.push(JSON.stringify(options.message)))], { mergeWithExisting: true })
        const before = (yield* Metric.value(undecodableEvents)).count
        const first = yield* Effect.forkChild(runRelay({ checkpointEvery: "50 millis" }).pipe(Effect.provide(collect)))
        yield* store.appendToStream("foreign-1", [{ eventId: "foreign-1", type: "Other", data: {}, metadata: {} }], "any")
        yield* appendEntityEvents(entities[0]!, 1)
        yield* store.appendToStream("foreign-2", [{ eventId: "foreign-2", type: "Other", data: {}, metadata: "not an object" }], "any")
        yield* appendEntityEvents(entities[1]!, 1)
        yield* eventually(checkpointNow, (c) => c === 4)
        yield* Fiber.interrupt(first)
        // a relay starting from scratch reads both again
        yield* Nats.use(({ manager }) =>
          tryNats("forget checkpoint", () => manager.streams.purge(StreamNames.checkpoints, { filter: checkpointSubject("history") })))
        const second = yield* Effect.forkChild(runRelay({ checkpointEvery: "50 millis" }).pipe(Effect.provide(collect)))
        yield* appendEntityEvents(entities[2]!, 1)
        yield* eventually(checkpointNow, (c) => c === 5)
        assert.strictEqual(yield* assertHistoryMatchesStore, 3)
        assert.strictEqual((yield* Metric.value(undecodableEvents)).count - before, 2)
        const warnings = logged.filter((line) => line.includes("skipped an event"))
        assert.strictEqual(warnings.length, 2, warnings.join("\n"))
        assert.isTrue(warnings[0]!.includes("foreign-1") && warnings[1]!.includes("foreign-2"))
        yield* Fiber.interrupt(second)
      })))
})

/** The relay under its lease in its own process (fixtures/leasedRelayProcess.ts), its log in `log`; SIGKILLed at the end. */
const startLeasedRelayProcess = (paths: { readonly events: string }, log: string, pauseFile?: string) =>
  Effect.gen(function*() {
    const { url, platform } = yield* TestNatsServer
    return yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--no-warnings", leasedRelayProcess, url, paths.events, ...(pauseFile === undefined ? [] : [pauseFile])], {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, NATS_USER: platform.user, NATS_PASSWORD: platform.password }
        })
      ).pipe(Effect.tap((child) => Effect.sync(() => {
        const keep = (chunk: Buffer) => writeFileSync(log, chunk, { flag: "a" })
        child.stdout.on("data", keep)
        child.stderr.on("data", keep)
      }))),
      (child) => Effect.sync(() => void child.kill("SIGKILL"))
    )
  })

/** A process's state letter in /proc/<pid>/stat ("T": stopped). */
const processState = (pid: number) => readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "").charAt(0)

const logOf = (file: string) => existsSync(file) ? readFileSync(file, "utf8") : ""

describe("history relay paused while it lost its lease", () => {
  it.live("cannot put an older snapshot back over the newer one its successor published (SNAPSHOTS publishes are fenced)", () =>
    withPlatform((paths) =>
      Effect.gen(function*() {
        const entity = entities[0]!
        const revisionInSnapshots = Effect.map(
          lastOnSubject(StreamNames.snapshots, snapshotSubject(entity.type, entity.id)),
          (message) => (message?.body as { revision?: number } | undefined)?.revision ?? -1
        )
        const pauseFile = join(paths.dir, "pause")
        const firstLog = join(paths.dir, "first.log")
        const first = yield* startLeasedRelayProcess(paths, firstLog, pauseFile)
        yield* appendEntityEvents(entity, 1)
        yield* eventually(revisionInSnapshots, (revision) => revision === 0, 60)

        // The first relay publishes revision 1 to HISTORY, then stops before its snapshot.
        writeFileSync(pauseFile, "")
        yield* appendEntityEvents(entity, 1)
        yield* eventually(Effect.sync(() => processState(first.pid!)), (state) => state === "T", 60)
        assert.strictEqual(yield* revisionInSnapshots, 0)

        // Its lease expires; a second relay takes over and publishes revisions 1 and 2.
        const second = yield* startLeasedRelayProcess(paths, join(paths.dir, "second.log"))
        yield* appendEntityEvents(entity, 1)
        yield* eventually(revisionInSnapshots, (revision) => revision === 2, 90)

        // Resumed, the first one publishes the snapshot of revision 1 it held, and finds its lease gone.
        first.kill("SIGCONT")
        yield* eventually(Effect.sync(() => logOf(firstLog)), (log) => log.includes("lease relay lost"), 60)
        assert.strictEqual(yield* revisionInSnapshots, 2, "SNAPSHOTS still holds the newest state")
        yield* assertSnapshotsMatchStore([entity])
        assert.strictEqual(yield* assertHistoryMatchesStore, 3)
        yield* killAndWait(second, "SIGTERM")
      }).pipe(Effect.scoped), "100 millis"), { timeout: 240_000 })
})
