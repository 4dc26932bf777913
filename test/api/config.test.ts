import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Option } from "effect"
import { PlatformConfig } from "../../api/config.ts"

const parse = (env: Record<string, string>) => PlatformConfig.parse(ConfigProvider.fromEnvRecord(env))

describe("platform configuration", () => {
  it("runs on the Node the project pins (24, through npm), not the machine's", () => {
    assert.strictEqual(Number(process.versions.node.split(".")[0]), 24)
  })

  it.effect("takes an ADMIN_API_KEY of 16 characters or more", () =>
    Effect.gen(function*() {
      assert.isTrue(Option.isSome((yield* parse({ ADMIN_API_KEY: "sixteen-chars-xy" })).adminApiKey))
    }))

  it.effect("has the documented defaults on an empty environment", () =>
    Effect.gen(function*() {
      const config = yield* parse({})
      assert.strictEqual(config.port, 8080)
      assert.strictEqual(config.dataDir, "./data")
      assert.isTrue(Option.isNone(config.natsUrl) && Option.isNone(config.eventStoreUrl))
      assert.strictEqual(config.natsPort, 4222)
      assert.strictEqual(Duration.toMillis(config.historyRetention), Duration.toMillis(Duration.days(30)))
      assert.strictEqual(config.snapshotEvery, 100)
      assert.strictEqual(config.entityMemoryBytes, 33_554_432)
    }))

  it.effect("rejects a value out of range, naming the variable", () =>
    Effect.gen(function*() {
      for (const [name, value] of [["COMMAND_TIMEOUT", "0 millis"], ["COMMAND_TIMEOUT", "Infinity"], ["PORT", "70000"], ["SNAPSHOT_EVERY", "0"], ["ENTITY_MAILBOX_SIZE", "-1"], ["BODY_LIMIT_BYTES", "x"], ["HISTORY_RETENTION", "soon"], ["ADMIN_API_KEY", "fifteen-chars-x"]]) {
        const error = yield* Effect.flip(parse({ [name!]: value! }))
        assert.include(String(error), name!)
        assert.notInclude(String(error), "fifteen-chars-x", "a secret's value is never shown")
      }
    }))

  it.effect("refuses a bounded stream that holds fewer than eight of its largest messages (several processes may each send one at once)", () =>
    Effect.gen(function*() {
      for (const name of ["INGEST_MAX_BYTES", "EVENTS_MAX_BYTES", "DELIVER_MAX_BYTES", "DELIVERY_DEAD_LETTERS_MAX_BYTES"]) {
        assert.include(String(yield* Effect.flip(parse({ [name]: "67108863" }))), name)
      }
      const ingest = yield* Effect.flip(parse({ INGEST_MAX_BYTES: "100000000", REALTIME_MAX_BYTES: "4194304" }))
      assert.include(String(ingest), "INGEST_MAX_BYTES must be at least 201850880: a real-time body may take six times REALTIME_MAX_BYTES")
      assert.strictEqual((yield* parse({ INGEST_MAX_BYTES: "100000000", REALTIME_MAX_BYTES: "2000000" })).ingestMaxBytes, 100_000_000)
      const events = yield* Effect.flip(parse({ EVENTS_MAX_BYTES: "100000000" }))
      assert.include(String(events), "EVENTS_MAX_BYTES must be at least 201326592: a batch's events may take three times EVENTS_BODY_MAX_BYTES")
      assert.strictEqual((yield* parse({ EVENTS_MAX_BYTES: "100000000", EVENTS_BODY_MAX_BYTES: "4000000" })).eventsMaxBytes, 100_000_000)
      // a chunk's records at their longest: 1,668 bytes each
      const deliver = yield* Effect.flip(parse({ DELIVER_MAX_BYTES: "67108864", DELIVERY_CHUNK_RECORDS: "6000" }))
      assert.include(String(deliver), "DELIVER_MAX_BYTES must be at least 80072192: a chunk of DELIVERY_CHUNK_RECORDS records")
      const letters = yield* Effect.flip(parse({ DELIVERY_DEAD_LETTERS_MAX_BYTES: "67108864", DELIVERY_CHUNK_RECORDS: "6000" }))
      assert.include(String(letters), "DELIVERY_DEAD_LETTERS_MAX_BYTES must be at least")
      assert.strictEqual((yield* parse({ DELIVER_MAX_BYTES: "67108864", DELIVERY_DEAD_LETTERS_MAX_BYTES: "67108864", DELIVERY_CHUNK_RECORDS: "4000" })).deliveryChunkRecords, 4_000)
    }))
})
