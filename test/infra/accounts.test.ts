/**
 * Issue 6 items 1 and 2, replayed as a hostile `reader` would, against a running platform. With one
 * account for everyone, the server published a JetStream API answer on whatever reply subject the
 * reader named and the platform's stream owning that subject stored it (junk commands in CMD, "NaN"
 * as the relay's checkpoint, an event twice in HISTORY, a lease taken); a push consumer delivered
 * one platform stream into another; and `_INBOX.>` showed the platform's commands, replies and
 * acknowledgements. Now the reader is in the READERS account (nats.conf), which holds only mirrors.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { createConnection } from "node:net"
import { join } from "node:path"
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { connect, createInbox } from "@nats-io/transport-node"
import type { NatsConnection } from "@nats-io/transport-node"
import { ConfigProvider, Context, Effect, Layer, Result } from "effect"
import { PlatformConfig } from "../../api/config.ts"
import { HttpServer, layer as platformLayer, NatsAccess } from "../../api/platform.ts"
import { BucketNames, checkpointSubject, commandSubject, historySubject, StreamNames } from "../../domain/subjects.ts"
import { ConsumerAccounts, platformApiPrefix } from "../../infra/nats/consumerAccounts.ts"
import { Nats, tryNats } from "../../infra/nats/Nats.ts"
import { freePort } from "../../infra/nats/NatsServer.ts"
import { eventually, request } from "../fixtures/http.ts"
import { connectAsReader, TestNatsServer } from "../fixtures/nats.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"
import { streamMessages } from "../fixtures/jetstreamContents.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const within = "60 seconds"
const ADMIN = "accounts-test-admin-key"

const put = (id: string, body: Record<string, unknown>) =>
  Effect.gen(function*() {
    const res = yield* request({ method: "PUT", url: `/v1/entities/advertiser/${id}`, body })
    assert.isBelow(res.statusCode, 300, res.body)
  })

/** The platform's view of a stream: its state, and the subjects it holds with their counts. */
const platformStream = (name: string) =>
  Effect.gen(function*() {
    const { manager } = yield* Nats
    const info = yield* tryNats("info", () => manager.streams.info(name, { subjects_filter: ">" }))
    return { lastSeq: info.state.last_seq, subjects: info.state.subjects ?? {} }
  })

/** Once the relay published the entity's event to the platform's HISTORY. */
const relayed = (id: string) =>
  eventually(platformStream(StreamNames.history), (s) => (s.subjects[historySubject("advertiser", id)] ?? 0) > 0, within)

/** HISTORY holds only the relay's events: each has its own Nats-Msg-Id (the event id) and an envelope naming it. */
const assertHistoryIsTheRelays = Effect.gen(function*() {
  const messages = yield* streamMessages(StreamNames.history)
  for (const m of messages) {
    assert.match(m.subject, /^history\.advertiser\.\d+$/, `HISTORY holds ${m.subject}`)
    assert.strictEqual((m.body as { eventId?: string }).eventId, m.headers["Nats-Msg-Id"], `HISTORY seq ${m.seq} is an event`)
  }
  assert.strictEqual(new Set(messages.map((m) => m.headers["Nats-Msg-Id"])).size, messages.length, "no event twice")
})

/** A request the reader makes with an answer sent to `reply`; answered in order after the ones before it. */
const answered = (reader: NatsConnection, subject: string, body: string) =>
  Effect.promise(() => reader.request(subject, body, { timeout: 30_000 }))

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 180_000 })("NATS accounts against the reader user", (it) => {
  describe("reply subjects", () => {
    it.effect("a JetStream API answer the reader directs onto a platform subject lands in no platform stream", () =>
      Effect.gen(function*() {
        yield* put("9001", { name: "target" })
        yield* relayed("9001")
        const reader = yield* connectAsReader
        const cmdBefore = (yield* platformStream(StreamNames.commands)).lastSeq
        const lastEvent = JSON.stringify({ last_by_subj: historySubject("advertiser", "9001") })
        const replies = [
          commandSubject("advertiser", 0, "9999"), // one a shard's consumer takes
          "cmd.advertiser.evil.1", // one no consumer takes: it would stay
          checkpointSubject("history"), // the relay's checkpoint
          historySubject("advertiser", "9001"), // an event again, past the duplicate window
          `$KV.${BucketNames.leases}.job.relay`,
          `$KV.${BucketNames.leases}.job.evil`,
          `$KV.${BucketNames.members}.evil`
        ]
        for (const reply of replies) {
          reader.publish("$JS.API.STREAM.INFO.HISTORY", "", { reply })
          reader.publish("$JS.API.STREAM.MSG.GET.HISTORY", lastEvent, { reply })
        }
        // the same requests answered to the reader itself: the ones before were answered by then
        yield* answered(reader, "$JS.API.STREAM.INFO.HISTORY", "")
        yield* answered(reader, "$JS.API.STREAM.MSG.GET.HISTORY", lastEvent)
        // and a command through the platform, long after the answers were stored or dropped
        yield* put("9002", { name: "after" })

        const cmd = yield* platformStream(StreamNames.commands)
        assert.strictEqual(cmd.lastSeq, cmdBefore + 1, `CMD stored only the platform's command: ${JSON.stringify(cmd.subjects)}`)
        yield* assertHistoryIsTheRelays
        const { connection, manager } = yield* Nats
        const checkpoint = yield* tryNats("get", () => manager.streams.getMessage(StreamNames.checkpoints, { last_by_subj: checkpointSubject("history") })).pipe(
          Effect.map((m) => m?.string()),
          Effect.catch(() => Effect.succeed(undefined)) // none saved yet
        )
        if (checkpoint !== undefined) assert.match(checkpoint, /^\d+$/, "the relay's checkpoint is a position")
        const leases = yield* tryNats("open", () => new Kvm(connection).open(BucketNames.leases))
        const members = yield* tryNats("open", () => new Kvm(connection).open(BucketNames.members))
        assert.isNull(yield* tryNats("get", () => leases.get("job.evil")))
        assert.isNull(yield* tryNats("get", () => members.get("evil")))
        const relayLease = yield* tryNats("get", () => leases.get("job.relay"))
        assert.match(relayLease?.string() ?? "", /^[-\w]+-\d+-[0-9a-f]{6}$/, "the relay's lease names its holder")
        // and the relay goes on
        yield* relayed("9002")
      }), 180_000)
  })

  describe("reply subjects inside READERS", () => {
    it.effect("no answer the reader directs onto READERS' own JetStream API deletes or purges a mirror or deletes a durable; direct get is refused", () =>
      Effect.gen(function*() {
        yield* put("9401", { name: "kept" })
        yield* relayed("9401")
        const reader = yield* connectAsReader
        const jsm = yield* Effect.promise(() => jetstreamManager(reader))
        yield* Effect.promise(() => jsm.consumers.add(StreamNames.history, { durable_name: "victim", ack_policy: AckPolicy.Explicit }))
        const mirrored = yield* eventually(
          Effect.promise(() => jsm.streams.info(StreamNames.history)),
          (info) => info.state.messages > 0,
          within
        )
        // nats-server 2.9 publishes a direct get's answer as the stream, past permissions: onto these
        // subjects an empty "not found" answer deleted or purged the mirror, or deleted the durable.
        const replies = [
          `$JS.API.STREAM.DELETE.${StreamNames.snapshots}`,
          `$JS.API.STREAM.PURGE.${StreamNames.history}`,
          `$JS.API.CONSUMER.DELETE.${StreamNames.history}.victim`,
          `$JS.API.STREAM.DELETE.${StreamNames.history}`
        ]
        const asks: Array<[string, string]> = [
          ["$JS.API.INFO", ""],
          [`$JS.API.STREAM.INFO.${StreamNames.history}`, ""],
          [`$JS.API.STREAM.MSG.GET.${StreamNames.history}`, JSON.stringify({ seq: 1 })],
          [`$JS.API.STREAM.MSG.GET.${StreamNames.history}`, JSON.stringify({ seq: 99_999_999 })],
          [`$JS.API.CONSUMER.INFO.${StreamNames.history}.victim`, ""],
          [`$JS.API.DIRECT.GET.${StreamNames.history}`, JSON.stringify({ seq: 99_999_999 })],
          [`$JS.API.DIRECT.GET.${StreamNames.snapshots}`, JSON.stringify({ seq: 99_999_999 })]
        ]
        for (const [subject, body] of asks) for (const reply of replies) reader.publish(subject, body, { reply })
        // answered in order after the ones before
        yield* answered(reader, `$JS.API.STREAM.INFO.${StreamNames.history}`, "")

        const names = yield* Effect.promise(async () => {
          const all: Array<string> = []
          for await (const name of jsm.streams.names()) all.push(name)
          return all.sort()
        })
        assert.deepStrictEqual(names, [StreamNames.history, StreamNames.snapshots, StreamNames.eventsClean, StreamNames.sessions, StreamNames.alerts].sort(), "every mirror is there")
        const after = yield* Effect.promise(() => jsm.streams.info(StreamNames.history))
        assert.isAtLeast(after.state.messages, mirrored.state.messages, "HISTORY's mirror was not purged")
        assert.strictEqual(after.state.first_seq, mirrored.state.first_seq, "HISTORY's mirror was not purged")
        const victim = yield* Effect.promise(() => jsm.consumers.info(StreamNames.history, "victim"))
        assert.strictEqual(victim.name, "victim", "the durable was not deleted")
        const refused = yield* Effect.promise(() =>
          reader.request(`$JS.API.DIRECT.GET.${StreamNames.snapshots}`, JSON.stringify({ seq: 1 }), { timeout: 10_000 }).then((m) => m.string(), (e: Error) => e.message)
        )
        assert.match(refused, /Permissions Violation for Publish/, "the reader may not ask for a direct get")
      }), 180_000)
  })

  describe("the mirrors' import of the platform's API", () => {
    it.effect("is closed to the reader, directly and through a reply subject: it creates no consumer on a platform stream", () =>
      Effect.gen(function*() {
        const reader = yield* connectAsReader
        const { manager } = yield* Nats
        const consumersOf = (stream: string) => tryNats("list", () => manager.consumers.list(stream).next()).pipe(Effect.map((list) => list.map((c) => c.name)))
        const before = yield* consumersOf(StreamNames.history)
        const create = `${platformApiPrefix}.CONSUMER.CREATE.${StreamNames.history}`
        const request = JSON.stringify({ stream_name: StreamNames.history, config: { deliver_subject: "cmd.advertiser.evil.3", ack_policy: "none" } })
        const direct = yield* Effect.promise(() => reader.request(create, request, { timeout: 10_000 }).then((m) => m.string(), (e: Error) => e.message))
        assert.match(direct, /Permissions Violation for Publish/)
        // The reader's own consumer create, answered onto the import: the answer carries the config it chose.
        reader.publish("$JS.API.CONSUMER.CREATE.HISTORY", request, { reply: create })
        yield* answered(reader, "$JS.API.CONSUMER.CREATE.HISTORY", request)
        yield* put("9301", { name: "after" })
        yield* relayed("9301")
        assert.deepStrictEqual(yield* consumersOf(StreamNames.history), before)
        assert.notProperty((yield* platformStream(StreamNames.commands)).subjects, "cmd.advertiser.evil.3")
      }), 180_000)
  })

  describe("push consumers", () => {
    it.effect("a deliver subject the reader chooses resolves in its own account: no platform stream receives a delivery", () =>
      Effect.gen(function*() {
        yield* put("9101", { name: "pushed" })
        yield* relayed("9101")
        const reader = yield* connectAsReader
        const jsm = yield* Effect.promise(() => jetstreamManager(reader))
        const cmdBefore = (yield* platformStream(StreamNames.commands)).lastSeq
        // Interest on the deliver subjects, wherever the reader may subscribe (a push consumer delivers only then).
        const ignore = () => undefined
        for (const subject of ["history.advertiser.666", "snapshot.advertiser.666", "cmd.advertiser.evil.2"]) reader.subscribe(subject, { callback: ignore })
        // The control: a push consumer onto the reader's own inbox delivers.
        const inbox = createInbox()
        let delivered = 0
        reader.subscribe(inbox, { callback: () => void delivered++ })
        yield* Effect.promise(() => reader.flush())
        const pushTo = (stream: string, deliver_subject: string) =>
          Effect.promise(() => jsm.consumers.add(stream, { deliver_subject, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All }))
        yield* pushTo(StreamNames.snapshots, "history.advertiser.666")
        yield* pushTo(StreamNames.history, "snapshot.advertiser.666")
        yield* pushTo(StreamNames.history, "cmd.advertiser.evil.2")
        yield* pushTo(StreamNames.history, inbox)
        const events = (yield* platformStream(StreamNames.history)).lastSeq
        yield* eventually(Effect.sync(() => delivered), (n) => n >= events, within)
        yield* put("9102", { name: "after" })
        yield* relayed("9102")

        const cmd = yield* platformStream(StreamNames.commands)
        assert.strictEqual(cmd.lastSeq, cmdBefore + 1, `CMD stored only the platform's command: ${JSON.stringify(cmd.subjects)}`)
        yield* assertHistoryIsTheRelays
        const snapshots = yield* platformStream(StreamNames.snapshots)
        for (const subject of Object.keys(snapshots.subjects)) assert.match(subject, /^snapshot\.advertiser\.\d+$/, `SNAPSHOTS holds ${subject}`)
        assert.notProperty(snapshots.subjects, "snapshot.advertiser.666")
      }), 180_000)
  })

  describe("the account's limits", () => {
    it.effect("readers hold at most 256 connections and 4,096 subscriptions together, and the platform still connects; the server refuses a reader's message over 16 KB", () =>
      Effect.gen(function*() {
        // Before stop 28: 1,023 reader connections kept a restarted platform from connecting (the server's
        // max_connections is 1,024), and a consumer config with a 7 MB filter subject took ~33 MB of memory.
        const { url, platform, reader } = yield* TestNatsServer
        const opened: Array<NatsConnection> = []
        let refused: unknown
        while (opened.length < 300 && refused === undefined) {
          const attempt = yield* Effect.result(Effect.tryPromise(() => connect({ servers: url, user: reader.user, pass: reader.password, reconnect: false, timeout: 5_000 })))
          if (Result.isSuccess(attempt)) opened.push(attempt.success)
          else refused = attempt.failure.cause
        }
        assert.isDefined(refused, "a reader connection was refused")
        // the server's "maximum account active connections exceeded", or its closing the socket first (EPIPE)
        assert.match(String(refused), /maximum account active connections exceeded|EPIPE|ECONNRESET|CONNECTION_CLOSED/i)
        assert.isAtMost(opened.length, 256)
        assert.isAtLeast(opened.length, 200)
        const platformConnection = yield* Effect.promise(() => connect({ servers: url, user: platform.user, pass: platform.password, reconnect: false }))
        yield* Effect.promise(() => platformConnection.close())
        yield* Effect.forEach(opened, (nc) => Effect.promise(() => nc.close()), { discard: true })
        // The server's own check, not the client's: a raw PUB of 20,000 bytes.
        const port = Number(new URL(url).port)
        const answer = yield* Effect.promise(() => new Promise<string>((resolve) => {
          const socket = createConnection({ host: "127.0.0.1", port })
          let text = ""
          socket.on("data", (data) => {
            text += data.toString()
            if (/-ERR/.test(text)) {
              socket.destroy()
              resolve(text)
            }
          })
          socket.on("close", () => resolve(text))
          socket.write(`CONNECT ${JSON.stringify({ user: reader.user, pass: reader.password, verbose: false, pedantic: false })}\r\nPUB $JS.API.INFO 20000\r\n${"x".repeat(20_000)}\r\n`)
        }))
        assert.match(answer, /-ERR 'Maximum Payload Violation'/)
        // and at most 4,096 subscriptions for every reader together
        const subscribed = yield* Effect.promise(() => new Promise<string>((resolve) => {
          const socket = createConnection({ host: "127.0.0.1", port })
          let text = ""
          socket.on("data", (data) => {
            text += data.toString()
            if (/PONG/.test(text)) {
              socket.destroy()
              resolve(text)
            }
          })
          socket.on("close", () => resolve(text))
          const subs = Array.from({ length: 5_000 }, (_, i) => `SUB _INBOX.attack.${i} ${i}\r\n`).join("")
          socket.write(`CONNECT ${JSON.stringify({ user: reader.user, pass: reader.password, verbose: false, pedantic: false })}\r\n${subs}PING\r\n`)
        }))
        assert.match(subscribed, /-ERR 'maximum subscriptions exceeded'/)
      }), 180_000)
  })

  describe("inboxes", () => {
    it.effect("a reader subscribed to _INBOX.> sees its own inboxes, none of the platform's commands, replies or acknowledgements", () =>
      Effect.gen(function*() {
        const reader = yield* connectAsReader
        const seen: Array<{ subject: string; data: string }> = []
        reader.subscribe("_INBOX.>", { callback: (_error, msg) => void seen.push({ subject: msg.subject, data: msg.string() }) })
        yield* Effect.promise(() => reader.flush())
        const marker = `inbox-secret-${Date.now()}`
        yield* put("9201", { name: marker })
        const patched = yield* request({ method: "PATCH", url: "/v1/entities/advertiser/9201", body: { domain: `${marker}.example` } })
        assert.strictEqual(patched.statusCode, 200, patched.body)
        yield* relayed("9201")
        // The subscription works: it receives the answer to the reader's own request.
        yield* answered(reader, "$JS.API.INFO", "")
        yield* eventually(Effect.sync(() => seen.length), (n) => n >= 1, within)
        const leaked = seen.filter((m) => m.data.includes(marker))
        assert.deepStrictEqual(leaked, [], "no command, reply or event of the platform's")
        assert.isFalse(seen.some((m) => /"stream":"CMD"/.test(m.data)), "no JetStream acknowledgement of the platform's")
      }), 180_000)
  })
})

describe("the embedded nats-server", () => {
  it.live("holds the platform's streams in PLATFORM and their mirrors in READERS, which the reader follows", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("accounts")
      const config = yield* PlatformConfig.parse(ConfigProvider.fromEnvRecord({
        PORT: "0", HOST: "127.0.0.1", DATA_DIR: join(dataDir, "data"), NATS_PORT: String(yield* freePort()), ADMIN_API_KEY: ADMIN
      }))
      const context = yield* Layer.build(platformLayer(config))
      const { app } = Context.get(context, HttpServer)
      const access = Context.get(context, NatsAccess)
      const res = yield* Effect.promise(() =>
        app.inject({ method: "PUT", url: "/v1/entities/advertiser/1", headers: { authorization: `Bearer ${ADMIN}` }, payload: { name: "Acme" } }))
      assert.strictEqual(res.statusCode, 201, res.body)
      const reader = yield* Effect.acquireRelease(
        Effect.promise(() => connect({ servers: access.url, user: access.reader!.user, pass: access.reader!.password })),
        (nc) => Effect.promise(() => nc.close())
      )
      const message = yield* Effect.promise(async () => (await jetstream(reader).consumers.get(StreamNames.history)).next({ expires: 30_000 }))
      assert.strictEqual(message?.subject, historySubject("advertiser", "1"))
      assert.strictEqual(message?.seq, 1, "the mirror keeps HISTORY's sequence numbers")
      const jsm = yield* Effect.promise(() => jetstreamManager(reader))
      const info = yield* Effect.promise(() => jsm.streams.info(StreamNames.history))
      assert.deepStrictEqual(info.config.subjects ?? [], [], "a mirror has no subjects a reader could publish to")
      assert.strictEqual(info.config.mirror?.name, StreamNames.history)
      assert.strictEqual(info.config.mirror?.external?.deliver, `${ConsumerAccounts.readers.deliverPrefix}.history`)
      const names = yield* Effect.promise(() => jsm.streams.names().next())
      assert.sameMembers(names, [StreamNames.history, StreamNames.snapshots, StreamNames.eventsClean, StreamNames.sessions, StreamNames.alerts], "the reader sees the mirrors, not CMD, EVENTS, DELIVER, CHECKPOINTS or the buckets")
    }).pipe(Effect.scoped), 180_000)
})
