/**
 * An entity actor that cannot even start (its stream holds an event this code cannot fold) restarts,
 * gives up, and its shard's session restarts: the command it never handled must not live on the bus
 * for ever, coming back with every session. It is handed back while its sender waits, then answered
 * Expired (not applied), and leaves CMD; the shard's other entities keep working meanwhile.
 */
import { assert, describe, layer } from "@effect/vitest"
import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { EventStore } from "../../../domain/EventStore.ts"
import { StreamNames } from "../../../domain/subjects.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { eventually, request } from "../../fixtures/http.ts"
import { layerTestPlatform } from "../../fixtures/platform.ts"

const commandsOnBus = Nats.use(({ manager }) =>
  Effect.map(tryNats("info", () => manager.streams.info(StreamNames.commands)), (info) => info.state.messages))

layer(layerTestPlatform({ SHARDS: "1", COMMAND_TIMEOUT: "2 seconds" }), { excludeTestServices: true, timeout: 120_000 })("an entity actor that gives up", (it) => {
  describe("its commands", () => {
    it.effect("are answered Expired at their deadline and leave CMD instead of coming back with every session", () =>
      Effect.gen(function*() {
        // An event no decider knows: folding the stream throws, so the actor's setup fails every time.
        yield* EventStore.use((store) =>
          store.appendToStream("advertiser-6001", [{ eventId: randomUUID(), type: "Mystery", data: {}, metadata: {} }], "no_stream"))
        const put = yield* request({ method: "PUT", url: "/v1/entities/advertiser/6001", body: { name: "never" } })
        assert.isAtLeast(put.statusCode, 500, put.body)

        // Another entity of the same (only) shard is served meanwhile.
        const other = yield* request({ method: "PUT", url: "/v1/entities/advertiser/6002", body: { name: "fine" } })
        assert.strictEqual(other.statusCode, 201, other.body)

        yield* eventually(commandsOnBus, (n) => n === 0, "45 seconds")
      }))
  })
})
