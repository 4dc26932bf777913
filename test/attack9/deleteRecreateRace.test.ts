/**
 * Attack (issue 9, a destination deleted and created again): a DELETE and a PUT of the same id sent at
 * once (a careless client retrying, two operators). The DELETE answers once it has dropped what the
 * destination keeps outside its history (secret headers, dead letters, chunks on DELIVER); the PUT
 * that creates it again meanwhile stores its own secret headers first. The DELETE's drop, running
 * after that creation, removed the new destination's secret headers (5 rounds of 5): its entity still
 * listed them, and its requests went without the credentials. Now the drop takes only what was written
 * before the DELETE, and a PUT that created the destination stores its secret headers again.
 */
import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect } from "effect"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { startAttackPlatform } from "./platform.ts"

const ROUNDS = 5

describe("attack: a destination deleted and created again at once", () => {
  it.live("a DELETE racing a PUT that creates the destination again leaves the new destination's secret headers", () =>
    Effect.gen(function*() {
      const { simulator, api, dataDir } = yield* startAttackPlatform("attack9-delete-race")
      const destination = {
        partnerId: "acme", url: `${simulator}/d/race`, format: "single", ratePerSecond: 50, segmentIds: ["941"],
        secretHeaders: { Authorization: "Bearer tok-0123456789" }
      }
      const storedSecrets = Effect.acquireUseRelease(
        Effect.sync(() => new DatabaseSync(join(dataDir, "delivery-secrets.db"), { readOnly: true })),
        (db) => Effect.sync(() => (db.prepare("SELECT count(*) AS n FROM destination_secrets WHERE destination = 'race'").get() as { n: number }).n),
        (db) => Effect.sync(() => db.close()))
      const lost: Array<number> = []
      for (let round = 0; round < ROUNDS; round++) {
        assert.include([200, 201], (yield* api("PUT", "/v1/entities/destination/race", destination)).status)
        const [deleted, created] = yield* Effect.all([
          api("DELETE", "/v1/entities/destination/race"),
          api("PUT", "/v1/entities/destination/race", destination)
        ], { concurrency: 2 })
        assert.strictEqual(deleted.status, 200, deleted.text)
        assert.include([200, 201], created.status, created.text)
        const now = yield* api("GET", "/v1/entities/destination/race")
        if (now.status !== 200) continue // the PUT came first: the destination is deleted, as asked
        const names = (now.body as { state: { secretHeaders?: ReadonlyArray<string> } }).state.secretHeaders ?? []
        assert.deepStrictEqual(names, ["authorization"])
        if ((yield* storedSecrets) === 0) lost.push(round)
      }
      assert.deepStrictEqual(lost, [], `rounds where the re-created destination lists secret headers the store no longer has: ${lost.join(", ")}`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })
})
