import { assert, describe, it, layer } from "@effect/vitest"
import { readFileSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { Effect, Schedule, Scope } from "effect"
import { jetstream } from "@nats-io/jetstream"
import { connect, headers } from "@nats-io/transport-node"
import { StreamNames, historySubject, snapshotSubject } from "../../domain/subjects.ts"
import { Nats, tryNats } from "../../infra/nats/Nats.ts"
import { defaultConfigFile, freePort, NatsUsers, startNatsServer, stopLeftover } from "../../infra/nats/NatsServer.ts"
import { ConsumerAccounts, ensureConsumerAccounts, platformApiPrefix } from "../../infra/nats/consumerAccounts.ts"
import { ensureTopology } from "../../infra/nats/topology.ts"
import { layerTestNats, startTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const encoder = new TextEncoder()
const passwords = { platform: "7e3", reader: "r: \"x\"" }

describe("nats-server process", () => {
  it.live("runs while its scope is open and is gone once it closes", () =>
    Effect.gen(function*() {
      const pid = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* startTestNatsServer
        assert.isTrue(isAlive(server.pid))
        // it accepts a real client and has JetStream enabled
        const streams = yield* Effect.scoped(Effect.gen(function*() {
          const { manager } = yield* Nats
          return yield* tryNats("account info", () => manager.getAccountInfo())
        }).pipe(Effect.provide(Nats.layer({ url: server.url, name: "probe", credentials: server.platform }))))
        assert.strictEqual(streams.streams, 0)
        return server.pid
      }))
      assert.isFalse(isAlive(pid))
    }))

  it.live("fails with the server's output when it cannot start", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("nats-bad")
      const port = yield* freePort()
      const error = yield* Effect.flip(startNatsServer({ configFile: `${dir}/missing.conf`, port, storeDir: dir, passwords }))
      assert.strictEqual(error._tag, "NatsServerError")
      assert.include(error.output, "missing.conf")
    }).pipe(Effect.scoped))

  it.live("reports a port already in use", () =>
    Effect.gen(function*() {
      const first = yield* startTestNatsServer
      const dir = yield* tempDir("nats-busy")
      const port = Number(new URL(first.url).port)
      const error = yield* Effect.flip(startNatsServer({ configFile: defaultConfigFile, port, storeDir: dir, passwords }))
      assert.strictEqual(error._tag, "NatsServerError")
      assert.match(error.output, /address already in use/)
    }).pipe(Effect.scoped))
})

describe("nats.conf users", () => {
  it.live("take any password; the reader follows HISTORY but may publish neither commands nor history", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("nats-users")
      const port = yield* freePort()
      const server = yield* startNatsServer({ configFile: defaultConfigFile, port, storeDir: dir, passwords })
      yield* Effect.gen(function*() {
        yield* ensureTopology()
        const nats = yield* Nats
        yield* tryNats("publish", () => nats.jetstream.publish(historySubject("advertiser", "1"), encoder.encode("{}")))
      }).pipe(Effect.provide(Nats.layer({ url: server.url, name: "platform", credentials: { user: NatsUsers.platform, password: passwords.platform } })))
      // the reader reads the READERS account's mirror of HISTORY, made by the platform's user there
      yield* ensureConsumerAccounts({ url: server.url, password: passwords.platform })

      const outcome = yield* Effect.promise(async () => {
        const reader = await connect({ servers: server.url, user: NatsUsers.reader, pass: passwords.reader })
        try {
          const message = await (await jetstream(reader).consumers.get(StreamNames.history)).next()
          const denied = (subject: string) =>
            reader.request(subject, "{}", { timeout: 2_000 }).then(() => "allowed", (e: Error) => e.message)
          return {
            read: message?.subject,
            command: await denied("cmd.advertiser.1"),
            history: await denied(historySubject("advertiser", "2")),
            stream: await denied("$JS.API.STREAM.DELETE.HISTORY")
          }
        } finally {
          await reader.close()
        }
      })
      assert.strictEqual(outcome.read, historySubject("advertiser", "1"))
      assert.match(outcome.command, /Permissions Violation for Publish/)
      assert.match(outcome.history, /Permissions Violation for Publish/)
      assert.match(outcome.stream, /Permissions Violation for Publish/)
      const wrong = yield* Effect.promise(() => connect({ servers: server.url, user: NatsUsers.reader, pass: "wrong" }).then(() => "connected", (e: Error) => e.name))
      assert.strictEqual(wrong, "AuthorizationError")
    }).pipe(Effect.scoped))
})

layer(layerTestNats({ duplicateWindow: "1 minute" }), { excludeTestServices: true })("JetStream topology", (it) => {
  it.effect("is idempotent and applies changed settings", () =>
    Effect.gen(function*() {
      const { manager } = yield* Nats
      yield* ensureTopology({ historyMaxAge: "30 days", duplicateWindow: "1 minute" })
      yield* ensureTopology({ historyMaxAge: "30 days", duplicateWindow: "1 minute" })
      const names = (yield* tryNats("list", () => manager.streams.names().next())).sort()
      assert.deepStrictEqual(names, Object.values(StreamNames).sort())
      const info = yield* tryNats("info", () => manager.streams.info(StreamNames.history))
      assert.strictEqual(info.config.max_age, 30 * 24 * 3600 * 1e9)
      assert.strictEqual(info.config.storage, "file")
      assert.strictEqual(info.config.retention, "limits")

      yield* ensureTopology({ historyMaxAge: "7 days", duplicateWindow: "1 minute" })
      const updated = yield* tryNats("info", () => manager.streams.info(StreamNames.history))
      assert.strictEqual(updated.config.max_age, 7 * 24 * 3600 * 1e9)
      const cmd = yield* tryNats("info", () => manager.streams.info(StreamNames.commands))
      assert.strictEqual(cmd.config.retention, "workqueue")
      assert.deepStrictEqual(cmd.config.subjects, ["cmd.>"])
      assert.strictEqual(cmd.config.max_age, 3600 * 1e9, "a command nobody took goes after an hour")
      const snapshots = yield* tryNats("info", () => manager.streams.info(StreamNames.snapshots))
      assert.strictEqual(snapshots.config.max_msgs_per_subject, 1)
      yield* ensureTopology({ duplicateWindow: "1 minute", deadLetterMaxAge: "2 days", deadLetterMaxBytes: 1_000_000 })
      const deadLetters = yield* tryNats("info", () => manager.streams.info(StreamNames.deadLetters))
      assert.deepInclude(deadLetters.config, { subjects: ["deadletter.>"], storage: "file", retention: "limits", max_age: 2 * 24 * 3600 * 1e9, max_bytes: 1_000_000 })
      // what consumers follow is bounded in bytes as well as age (4 GiB each by default), the oldest going first
      const followed = [StreamNames.eventsClean, StreamNames.sessions, StreamNames.alerts, StreamNames.receipts]
      for (const name of followed) {
        assert.deepInclude((yield* tryNats("info", () => manager.streams.info(name))).config, { max_bytes: 4_294_967_296, discard: "old" })
      }
      yield* ensureTopology({ duplicateWindow: "1 minute", followMaxBytes: 5_000_000 })
      for (const name of followed) {
        assert.deepInclude((yield* tryNats("info", () => manager.streams.info(name))).config, { max_bytes: 5_000_000, discard: "old" })
      }
      // HISTORY is a window in bytes too (8 GiB), the oldest going first; DELIVER refuses new chunks
      // when one lane holds 10,000, so a destination that is down fills its own lanes only. Its bytes
      // (2 GiB) are kept by its publisher: JetStream's max_bytes with discard new drops old messages on
      // nats-server 2.9, so it is set at twice the bound, a backstop (infra/nats/streamBytes.ts)
      assert.deepInclude((yield* tryNats("info", () => manager.streams.info(StreamNames.history))).config, { max_bytes: 8_589_934_592, discard: "old" })
      assert.deepInclude((yield* tryNats("info", () => manager.streams.info(StreamNames.deliver))).config, {
        max_bytes: 2 * 2_147_483_648, max_msgs_per_subject: 10_000, discard: "new", discard_new_per_subject: true, retention: "workqueue"
      })
      // DLQ refuses a destination's letters past 1,000,000, and any past 2 GiB (kept by the deliverers, a backstop at twice): never an old one dropped
      assert.deepInclude((yield* tryNats("info", () => manager.streams.info(StreamNames.deliveryDeadLetters))).config, {
        max_bytes: 2 * 2_147_483_648, max_msgs_per_subject: 1_000_000, discard: "new", discard_new_per_subject: true, retention: "limits"
      })
      yield* ensureTopology({ duplicateWindow: "1 minute", historyMaxBytes: 7_000_000, deliverMaxBytes: 8_000_000, deliverLaneMaxChunks: 9 })
      assert.strictEqual((yield* tryNats("info", () => manager.streams.info(StreamNames.history))).config.max_bytes, 7_000_000)
      assert.deepInclude((yield* tryNats("info", () => manager.streams.info(StreamNames.deliver))).config, { max_bytes: 16_000_000, max_msgs_per_subject: 9 })
    }))

  it.effect("the READERS account mirrors HISTORY, SNAPSHOTS and the app events' streams with their settings, and is updated like them", () =>
    Effect.gen(function*() {
      const { url, platform } = yield* TestNatsServer
      const readers = ConsumerAccounts.readers
      const topology = { historyMaxAge: "7 days", historyMaxBytes: 5_000_000, duplicateWindow: "1 minute", followMaxBytes: 6_000_000 } as const
      yield* ensureConsumerAccounts({ url, password: platform.password, topology })
      yield* ensureConsumerAccounts({ url, password: platform.password, topology })
      const [history, snapshots, clean, names, account] = yield* Effect.gen(function*() {
        const { manager } = yield* Nats
        return yield* Effect.all([
          tryNats("info", () => manager.streams.info(StreamNames.history)),
          tryNats("info", () => manager.streams.info(StreamNames.snapshots)),
          tryNats("info", () => manager.streams.info(StreamNames.eventsClean)),
          tryNats("names", () => manager.streams.names().next()),
          tryNats("account", () => manager.getAccountInfo())
        ])
      }).pipe(Effect.provide(Nats.layer({ url, name: "readers-admin", credentials: { user: readers.admin, password: platform.password } })))
      assert.sameMembers(names, [StreamNames.history, StreamNames.snapshots, StreamNames.eventsClean, StreamNames.sessions, StreamNames.alerts])
      // bounded (nats.conf): a reader cannot pile up consumers or fill memory
      assert.include(account.limits, { max_streams: 5, max_consumers: 1000, max_memory: 0 })
      for (const info of [history, snapshots]) {
        assert.deepStrictEqual(info.config.subjects ?? [], [])
        assert.deepStrictEqual(info.config.mirror, {
          name: info.config.name,
          external: { api: platformApiPrefix, deliver: `${readers.deliverPrefix}.${info.config.name.toLowerCase()}` }
        })
        assert.isFalse(info.config.allow_direct, "no direct get on a mirror: its answers are published past permissions (README, accounts)")
        assert.isFalse(info.config.mirror_direct ?? false, "nor a direct get served by the mirror for its origin")
      }
      assert.strictEqual(history.config.max_age, 7 * 24 * 3600 * 1e9)
      assert.strictEqual(history.config.max_bytes, 5_000_000)
      assert.strictEqual(snapshots.config.max_msgs_per_subject, 1)
      assert.strictEqual(clean.config.max_bytes, 6_000_000, "a mirror is bounded as its stream")
    }))

  it.effect("CMD lets go of a command nobody took once past its age (every command's deadline passed)", () =>
    Effect.gen(function*() {
      const { jetstream, manager } = yield* Nats
      // CMD's age is never lowered (below): a stream of its own for this test
      yield* tryNats("delete CMD", () => manager.streams.delete(StreamNames.commands))
      yield* ensureTopology({ duplicateWindow: "1 minute", commandsMaxAge: "1 second" })
      yield* tryNats("publish", () => jetstream.publish("cmd.campaign.0.7", encoder.encode("{}")))
      const held = Effect.map(tryNats("info", () => manager.streams.info(StreamNames.commands)), (info) => info.state.messages)
      assert.strictEqual(yield* held, 1)
      yield* held.pipe(Effect.filterOrFail((messages) => messages === 0), Effect.retry(Schedule.spaced("200 millis")), Effect.timeout("20 seconds"))
      yield* ensureTopology({ duplicateWindow: "1 minute" })
    }))

  it.effect("CMD's age is never lowered: a process with a shorter COMMAND_TIMEOUT does not cut the commands another waits for", () =>
    Effect.gen(function*() {
      const { manager } = yield* Nats
      const age = Effect.map(tryNats("info", () => manager.streams.info(StreamNames.commands)), (info) => info.config.max_age / 3_600e9)
      yield* ensureTopology({ duplicateWindow: "1 minute", commandsMaxAge: "6 hours" })
      assert.strictEqual(yield* age, 6)
      yield* ensureTopology({ duplicateWindow: "1 minute", commandsMaxAge: "1 hour" })
      assert.strictEqual(yield* age, 6, "the 1-hour process kept the 6 hours")
      yield* ensureTopology({ duplicateWindow: "1 minute", commandsMaxAge: "8 hours" })
      assert.strictEqual(yield* age, 8)
      yield* ensureTopology({ duplicateWindow: "1 minute" })
      assert.strictEqual(yield* age, 8)
    }))

  it.effect("SNAPSHOTS keeps only the last message of each subject", () =>
    Effect.gen(function*() {
      const { jetstream, manager } = yield* Nats
      for (const n of [1, 2, 3]) {
        yield* tryNats("publish", () => jetstream.publish(snapshotSubject("advertiser", "1"), encoder.encode(`a${n}`)))
      }
      yield* tryNats("publish", () => jetstream.publish(snapshotSubject("advertiser", "2"), encoder.encode("b1")))
      const info = yield* tryNats("info", () => manager.streams.info(StreamNames.snapshots))
      assert.strictEqual(info.state.messages, 2)
      const last = yield* tryNats("get", () =>
        manager.streams.getMessage(StreamNames.snapshots, { last_by_subj: snapshotSubject("advertiser", "1") }))
      assert.strictEqual(last?.string(), "a3")
    }))

  it.effect("HISTORY drops a re-publish with the same Nats-Msg-Id", () =>
    Effect.gen(function*() {
      const { jetstream, manager } = yield* Nats
      const subject = historySubject("campaign", "42")
      const h = headers()
      h.set("Tributary-Position", "1")
      const first = yield* tryNats("publish", () =>
        jetstream.publish(subject, encoder.encode("e1"), { msgID: "event-1", headers: h }))
      const again = yield* tryNats("publish", () =>
        jetstream.publish(subject, encoder.encode("e1 again"), { msgID: "event-1", headers: h }))
      const other = yield* tryNats("publish", () => jetstream.publish(subject, encoder.encode("e2"), { msgID: "event-2" }))
      assert.isFalse(first.duplicate)
      assert.isTrue(again.duplicate)
      assert.strictEqual(again.seq, first.seq)
      assert.isFalse(other.duplicate)
      const info = yield* tryNats("info", () => manager.streams.info(StreamNames.history))
      assert.strictEqual(info.state.messages, 2)
      const stored = yield* tryNats("get", () => manager.streams.getMessage(StreamNames.history, { seq: first.seq }))
      assert.strictEqual(stored?.string(), "e1")
    }))
})

describe("a nats-server left behind", () => {
  it.live("is stopped through its pid file before a new one starts on the same store", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("nats-leftover")
      const pidFile = `${dir}/nats-server.pid`
      const port = yield* freePort()
      const options = { configFile: defaultConfigFile, port, storeDir: `${dir}/store`, passwords, pidFile }
      // The first owner "dies" without stopping its server: its scope is never closed here.
      const orphan = yield* Scope.make()
      const first = yield* startNatsServer(options).pipe(Scope.provide(orphan))
      const second = yield* startNatsServer(options)
      assert.notStrictEqual(second.pid, first.pid)
      assert.isFalse(isAlive(first.pid), "the left-over server was stopped")
      assert.isTrue(isAlive(second.pid))
    }).pipe(Effect.scoped))

  it.live("is never signalled when it was started in another PID namespace, where its pid names another process", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("nats-other-namespace")
      const pidFile = `${dir}/nats-server.pid`
      const storeDir = `${dir}/store`
      const server = yield* startNatsServer({ configFile: defaultConfigFile, port: yield* freePort(), storeDir, passwords, pidFile })
      const owner = JSON.parse(readFileSync(`${dir}/nats-server.owner`, "utf8")) as Record<string, unknown>
      assert.match(String(owner.pidNamespace), /^[0-9a-f]{12}$/)
      writeFileSync(`${dir}/nats-server.owner`, JSON.stringify({ ...owner, pidNamespace: "000000000000" }))
      yield* stopLeftover(pidFile, storeDir, "1 second")
      assert.isTrue(isAlive(server.pid))
    }).pipe(Effect.scoped))

  it.live("leaves alone a process named by the pid file that is not a nats-server on this store", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("nats-pidfile")
      const pidFile = `${dir}/nats-server.pid`
      const other = yield* startTestNatsServer // a nats-server, but on another store
      writeFileSync(pidFile, String(other.pid))
      yield* startNatsServer({ configFile: defaultConfigFile, port: yield* freePort(), storeDir: `${dir}/store`, passwords, pidFile })
      assert.isTrue(isAlive(other.pid))
    }).pipe(Effect.scoped))
})

describe("freePort", () => {
  it.live("picks ports below the kernel's ephemeral range, which outgoing connections never take, and skips taken ones", () =>
    Effect.gen(function*() {
      const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number)
      const ports = new Set<number>()
      for (let i = 0; i < 20; i++) {
        const port = yield* freePort()
        assert.isBelow(port, low!)
        ports.add(port)
      }
      assert.isAbove(ports.size, 1, "picked at random")
      // every port it gives is free: bound here, the next picks avoid it
      const held = yield* Effect.promise(() =>
        new Promise<Server>((resolve) => {
          const server = createServer().listen([...ports][0], "127.0.0.1", () => resolve(server))
        })
      )
      const port = yield* freePort()
      assert.notStrictEqual(port, [...ports][0])
      yield* Effect.promise(() => new Promise((resolve) => held.close(resolve)))
    }))
})
