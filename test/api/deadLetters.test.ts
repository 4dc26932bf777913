/**
 * Poison messages on CMD, published from outside with the platform's own NATS user: each is moved to
 * DEADLETTERS once (listed at /v1/admin/dead-letters, counted in /metrics, logged once), its sender
 * is answered, it is gone from CMD, and commands keep being processed.
 */
import { assert, describe, layer } from "@effect/vitest"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect, createInbox, headers } from "@nats-io/transport-node"
import { Effect, Layer, Logger } from "effect"
import { checkedHeader } from "../../domain/checked.ts"
import type { DeadLetter, DeadLetterPage } from "../../domain/DeadLetters.ts"
import { shardOf } from "../../domain/shards.ts"
import { assertInvalid, assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { TestNatsServer } from "../fixtures/nats.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

const SHARDS = 4

/** Every log line of the platform, as text, to count what it says about a message. */
const logged: Array<string> = []
const capture = Logger.layer([Logger.make(({ message }) => void logged.push(JSON.stringify(message)))], { mergeWithExisting: true })

/** A plain nats.js client with the platform's own user, as an attacker holding its password would connect. */
const connectAsPlatform = Effect.gen(function*() {
  const { url, platform } = yield* TestNatsServer
  return yield* Effect.acquireRelease(
    Effect.promise(() => connect({ servers: url, name: "poison-test", user: platform.user, pass: platform.password })),
    (nc) => Effect.promise(() => nc.close())
  )
})

/** Publishes `payload` on `subject` into CMD with a reply subject, as the bus's senders do; returns the answer's text. */
const publishPoison = (subject: string, payload: string | Uint8Array, mark?: string) =>
  Effect.gen(function*() {
    const nc = yield* connectAsPlatform
    const inbox = createInbox()
    const answers = nc.subscribe(inbox, { max: 1 })
    const h = headers()
    h.set("Tributary-Reply-To", inbox)
    if (mark !== undefined) h.set(checkedHeader, mark)
    const ack = yield* Effect.promise(() => jetstream(nc).publish(subject, payload, { headers: h }))
    const answer = yield* Effect.promise(async () => {
      for await (const msg of answers) return msg.string()
      return undefined
    }).pipe(Effect.timeout("30 seconds"))
    return { seq: ack.seq, answer: answer === undefined ? undefined : JSON.parse(answer) as { _tag: string; message: string } }
  }).pipe(Effect.scoped)

const listDeadLetters = (query = "") =>
  Effect.gen(function*() {
    const res = yield* request({ method: "GET", url: `/v1/admin/dead-letters${query}` })
    assert.strictEqual(res.statusCode, 200, res.body)
    return res.json() as DeadLetterPage
  })

const deadLetterOf = (seq: number) =>
  Effect.map(eventually(listDeadLetters("?limit=1000"), (page) => page.deadLetters.some((d) => d.streamSequence === seq)), (page) =>
    page.deadLetters.find((d) => d.streamSequence === seq)!)

const commandStream = Effect.gen(function*() {
  const nc = yield* connectAsPlatform
  const jsm = yield* Effect.promise(() => jetstreamManager(nc))
  return (yield* Effect.promise(() => jsm.streams.info("CMD"))).state
}).pipe(Effect.scoped)

const shardConsumer = (shard: number) =>
  Effect.gen(function*() {
    const nc = yield* connectAsPlatform
    const jsm = yield* Effect.promise(() => jetstreamManager(nc))
    return yield* Effect.promise(() => jsm.consumers.info("CMD", `shard-${shard}`))
  }).pipe(Effect.scoped)

const countOf = (text: string, reason: string) => Number(new RegExp(`tributary_dead_letters_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)`).exec(text)?.[1] ?? 0)
const metrics = Effect.map(request({ method: "GET", url: "/metrics", key: null }), (res) => res.body)

const platform = layerTestPlatform({ SHARDS: String(SHARDS) }).pipe(Layer.provide(capture))

layer(platform, { excludeTestServices: true, timeout: 120_000 })("dead letters", (it) => {
  describe("poison messages on CMD", () => {
    it.effect("garbage is dead-lettered once with its reason, answered, counted, gone from CMD; commands keep working", () =>
      Effect.gen(function*() {
        const before = countOf(yield* metrics, "undecodable")
        const poison = yield* publishPoison("cmd.advertiser.0.x", "\u0000 not json at all")
        assert.deepStrictEqual(poison.answer?._tag, "Failed", "the sender is answered")
        assert.match(poison.answer!.message, /undecodable/)

        const letter: DeadLetter = yield* deadLetterOf(poison.seq)
        assert.deepInclude(letter, {
          reason: "undecodable",
          stream: "CMD",
          subject: "cmd.advertiser.0.x",
          deliveries: 1,
          payload: "\u0000 not json at all",
          payloadEncoding: "utf8",
          payloadBytes: 17,
          payloadTruncated: false
        })
        assert.isString(letter.headers["Tributary-Reply-To"]?.[0])
        assert.strictEqual(new Date(letter.deadAt).toISOString(), letter.deadAt)

        // Removed from the work queue (nothing left to redeliver), counted, logged once.
        const cmd = yield* eventually(commandStream, (state) => state.messages === 0)
        assert.isAtLeast(cmd.last_seq, poison.seq)
        assert.strictEqual(countOf(yield* metrics, "undecodable"), before + 1)
        const lines = logged.filter((line) => line.includes("dead letter") && line.includes(`"streamSequence":${poison.seq}`))
        assert.strictEqual(lines.length, 1, lines.join("\n"))

        // Every shard's consumer gives up on a message after COMMAND_MAX_DELIVER deliveries (default 5).
        assert.strictEqual((yield* shardConsumer(0)).config.max_deliver, 5)

        // Commands are still processed.
        const put = yield* request({ method: "PUT", url: "/v1/entities/advertiser/7001", body: { name: "still works" } })
        assert.strictEqual(put.statusCode, 201, put.body)
      }))

    it.effect("binary garbage is kept base64-encoded; a command for an unknown entity type or for another shard is dead-lettered too", () =>
      Effect.gen(function*() {
        const binary = yield* publishPoison("cmd.advertiser.1.y", new Uint8Array([0xff, 0xfe, 0x00, 0x80]))
        const kept = yield* deadLetterOf(binary.seq)
        assert.deepInclude(kept, { reason: "undecodable", payload: "//4AgA==", payloadEncoding: "base64", payloadBytes: 4 })

        const command = (entityType: string, entityId: string) =>
          JSON.stringify({ commandId: `c-${entityType}-${entityId}`, correlationId: "t", entityType, entityId, action: { _tag: "Put", fields: { name: "x" } } })
        const unknown = yield* publishPoison("cmd.nosuchtype.0.1", command("nosuchtype", "1"))
        assert.strictEqual((yield* deadLetterOf(unknown.seq)).reason, "unknown-entity-type")
        assert.match(unknown.answer!.message, /unknown-entity-type/)

        // marked as checked against another version of EntityCommand than this one's: decoded, and refused
        const otherVersion = yield* publishPoison("cmd.advertiser.0.z", JSON.stringify({ commandId: 7, action: null }), "EntityCommand/0")
        assert.strictEqual((yield* deadLetterOf(otherVersion.seq)).reason, "undecodable")

        const id = "42"
        const wrong = (shardOf(id, SHARDS) + 1) % SHARDS
        const misplaced = yield* publishPoison(`cmd.advertiser.${wrong}.${id}`, command("advertiser", id))
        assert.strictEqual((yield* deadLetterOf(misplaced.seq)).reason, "wrong-shard")
        yield* eventually(commandStream, (state) => state.messages === 0)
        // never applied
        assert.strictEqual((yield* request({ method: "GET", url: `/v1/entities/advertiser/${id}` })).statusCode, 404)
      }))
  })

  describe("poison messages on the other work queues", () => {
    it.effect("garbage on EVENTS, INGEST and DELIVER is set aside in DEADLETTERS and gone from its work queue; the queue keeps working", () =>
      Effect.gen(function*() {
        // a destination, so that its lane's deliverer runs (an app and a partner are found from their waiting messages)
        assert.strictEqual((yield* request({ method: "PUT", url: "/v1/entities/partner/poison-co", body: { name: "Poison" } })).statusCode, 201)
        const destination = yield* request({
          method: "PUT", url: "/v1/entities/destination/poison-d",
          body: { partnerId: "poison-co", url: "http://127.0.0.1:9/never", format: "single", ratePerSecond: 1, segmentIds: ["1"] }
        })
        assert.strictEqual(destination.statusCode, 201, destination.body)
        const nc = yield* connectAsPlatform
        const js = jetstream(nc)
        const jsm = yield* Effect.promise(() => jetstreamManager(nc))
        const poisoned = [
          { stream: "EVENTS", subject: "events.9001" },
          { stream: "INGEST", subject: "ingest.poison-co" },
          { stream: "DELIVER", subject: "deliver.poison-d.0" }
        ]
        for (const { stream, subject } of poisoned) {
          const { seq } = yield* Effect.promise(() => js.publish(subject, `{"not": "a message of ${stream}"`))
          const page = yield* eventually(listDeadLetters("?limit=1000"), (page) => page.deadLetters.some((d) => d.stream === stream && d.streamSequence === seq), "60 seconds")
          const letter = page.deadLetters.find((d) => d.stream === stream && d.streamSequence === seq)!
          assert.deepInclude(letter, { reason: "undecodable", subject, payload: `{"not": "a message of ${stream}"` })
          // acknowledged: nothing of the subject is left on its work queue
          yield* eventually(Effect.promise(() => jsm.streams.info(stream, { subjects_filter: subject })), (info) => (info.state.subjects?.[subject] ?? 0) === 0)
        }
      }).pipe(Effect.scoped))
  })

  describe("reply subjects", () => {
    it.effect("an answer goes only to an inbox: a reply header naming a stream's subject writes nothing there", () =>
      Effect.gen(function*() {
        const nc = yield* connectAsPlatform
        const jsm = yield* Effect.promise(() => jetstreamManager(nc))
        const lastCheckpoint = Effect.promise(() => jsm.streams.info("CHECKPOINTS")).pipe(Effect.map((info) => info.state.last_seq))
        const before = yield* lastCheckpoint
        /** What was written to CHECKPOINTS since `before` (the relay writes its own checkpoints meanwhile). */
        const written = Effect.gen(function*() {
          const texts: Array<string> = []
          for (let seq = before + 1; seq <= (yield* lastCheckpoint); seq++) {
            const msg = yield* Effect.promise(() => jsm.streams.getMessage("CHECKPOINTS", { seq }))
            if (msg !== null) texts.push(msg.string())
          }
          return texts
        })
        const h = headers()
        h.set("Tributary-Reply-To", "checkpoint.history")
        const poison = yield* Effect.promise(() => jetstream(nc).publish("cmd.advertiser.3.z", "poison with a hostile reply subject", { headers: h }))
        yield* deadLetterOf(poison.seq)
        // a valid command too, answered by its entity
        const command = { commandId: "hostile-reply", correlationId: "t", entityType: "advertiser", entityId: "8", action: { _tag: "Put", fields: { name: "x" } } }
        const valid = yield* Effect.promise(() =>
          jetstream(nc).publish(`cmd.advertiser.${shardOf("8", SHARDS)}.8`, JSON.stringify(command), { headers: h }))
        yield* eventually(commandStream, (state) => state.messages === 0 && state.last_seq >= valid.seq)
        yield* eventually(request({ method: "GET", url: "/v1/entities/advertiser/8" }), (res) => res.statusCode === 200)
        yield* Effect.promise(() => nc.flush())
        const replies = (yield* written).filter((text) => text.includes("_tag"))
        assert.deepStrictEqual(replies, [], "no answer was written to CHECKPOINTS")
      }).pipe(Effect.scoped))
  })

  describe("GET /v1/admin/dead-letters", () => {
    it.effect("pages oldest first with limit and after; admin only; problem+json for a bad query", () =>
      Effect.gen(function*() {
        for (let i = 0; i < 3; i++) yield* publishPoison(`cmd.advertiser.2.p${i}`, `page ${i}`)
        const all = (yield* eventually(listDeadLetters("?limit=1000"), (page) => page.deadLetters.filter((d) => d.payload.startsWith("page ")).length === 3)).deadLetters
        const sequences = all.map((d) => d.sequence)
        assert.deepStrictEqual(sequences, [...sequences].sort((a, b) => a - b), "oldest first")

        const first = yield* listDeadLetters("?limit=2")
        assert.deepStrictEqual(first.deadLetters.map((d) => d.sequence), sequences.slice(0, 2))
        assert.strictEqual(first.nextAfter, sequences[1])
        const second = yield* listDeadLetters(`?limit=2&after=${first.nextAfter}`)
        assert.deepStrictEqual(second.deadLetters.map((d) => d.sequence), sequences.slice(2, 4))
        const last = yield* listDeadLetters(`?after=${sequences.at(-1)}`)
        assert.deepStrictEqual(last, { deadLetters: [] })

        assertInvalid(yield* request({ method: "GET", url: "/v1/admin/dead-letters?limit=0" }), "query", "/limit")
        assertInvalid(yield* request({ method: "GET", url: "/v1/admin/dead-letters?after=-1" }), "query", "/after")
        const service = yield* createKey("service")
        assertProblem(yield* request({ method: "GET", url: "/v1/admin/dead-letters", key: service.secret }), 403, "forbidden")
        assertProblem(yield* request({ method: "GET", url: "/v1/admin/dead-letters", key: null }), 401, "unauthorized")

        const docs = (yield* request({ method: "GET", url: "/docs/json", key: null })).json() as { paths: Record<string, { get?: unknown }> }
        assert.isDefined(docs.paths["/v1/admin/dead-letters"]?.get, "listed in the OpenAPI document")
      }))
  })
})
