import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Effect, Option } from "effect"
import { layerSqlite as eventStore } from "../../infra/eventstore/sqlite.ts"
import { lifeStartRevision } from "../../projections/EntityQueries.ts"
import { appendDestinationEvent, createDestination } from "../fixtures/destinationEvents.ts"
import { tempDir } from "../fixtures/tempDir.ts"

describe("a record's life", () => {
  it.live("starts at its last EntityCreated at or before the revision read; a known earlier life limits the read to the events since", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("life")
      yield* Effect.gen(function*() {
        yield* createDestination("d", ["1"]) // 0
        yield* appendDestinationEvent("d", "EntityUpdated", { changes: { ratePerSecond: 5 } }) // 1
        yield* appendDestinationEvent("d", "EntityDeleted") // 2
        yield* createDestination("d", ["1"]) // 3
        for (let i = 0; i < 300; i++) yield* appendDestinationEvent("d", "EntityUpdated", { changes: { ratePerSecond: 6 + i } }) // 4..303
        const life = (at: number, known?: { revision: number; start: number }) => Effect.map(lifeStartRevision("destination", "d", at, known), Option.getOrUndefined)
        assert.strictEqual(yield* life(1), 0)
        assert.strictEqual(yield* life(303), 3, "read back over more than a page")
        assert.strictEqual(yield* life(303, { revision: 1, start: 0 }), 3, "created again since the known life")
        assert.strictEqual(yield* life(303, { revision: 300, start: 3 }), 3)
        assert.strictEqual(yield* life(303, { revision: 300, start: 99 }), 99, "nothing created since: the known life goes on (only the events since are read)")
        assert.isUndefined(yield* life(-1))
      }).pipe(Effect.provide(eventStore({ path: join(dir, "events.db") })))
    }).pipe(Effect.scoped), 60_000)
})
