import { assert, describe, it } from "@effect/vitest"
import { DatabaseSync } from "node:sqlite"
import { join } from "node:path"
import { Context, Effect, Layer } from "effect"
import { type MembershipChange, ReplaceIndex } from "../../../domain/ingest/ReplaceIndex.ts"
import { layerSqlite } from "../../../infra/ingest/replaceIndexSqlite.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const open = (path: string) => Effect.map(Layer.build(Layer.fresh(layerSqlite({ path }))), (context) => Context.get(context, ReplaceIndex))

const change = (profileId: string, present: boolean, time: number): MembershipChange => ({ segmentId: "1", profileId, present, time })

/** What a replacement job listing nothing of segment 1 but `u0` would remove. */
const unlisted = (index: ReplaceIndex["Service"], job: string) =>
  Effect.gen(function*() {
    yield* index.listed(job, [{ segmentId: "1", profileId: "u0" }])
    const page = yield* index.unlisted("acme", job, { limit: 100 })
    yield* index.forget(job)
    return page.map((m) => m.profileId)
  })

describe("replace index", () => {
  it.effect("keeps the newest change of a membership, whatever order the changes come in, and an add at the same time as a remove", () =>
    Effect.gen(function*() {
      const index = yield* open(join(yield* tempDir("replace-index"), "members.db"))
      yield* index.committed("acme", [
        // an add, then a replacement's older removal (accepted, changing nothing): still a member
        change("u1", true, 5), change("u1", false, 3),
        // the older removal committed first: the same
        change("u2", false, 3), change("u2", true, 5),
        // a newer removal takes it
        change("u3", true, 5), change("u3", false, 7),
        // an older add after a newer removal: listed (a removal that changes nothing is the cost)
        change("u4", true, 5), change("u4", false, 7), change("u4", true, 6),
        // a tie keeps the add
        change("u5", true, 5), change("u5", false, 5),
        // a later add renews the time: the removal between them does not take it
        change("u6", true, 5), change("u6", true, 9), change("u6", false, 7)
      ])
      assert.deepStrictEqual(yield* unlisted(index, "j1"), ["u1", "u2", "u4", "u5", "u6"])
      yield* index.committed("acme", [change("u6", false, 10)])
      assert.deepStrictEqual(yield* unlisted(index, "j2"), ["u1", "u2", "u4", "u5"])
    }))

  it.effect("opens a file written before rows kept their time: its memberships stay, and any removal takes them", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("replace-index"), "members.db")
      const old = new DatabaseSync(path)
      old.exec(`CREATE TABLE partner_members (partner TEXT NOT NULL, segment_id TEXT NOT NULL, profile_id TEXT NOT NULL,
        PRIMARY KEY (partner, segment_id, profile_id)) WITHOUT ROWID;
        INSERT INTO partner_members VALUES ('acme', '1', 'u1'), ('acme', '1', 'u2')`)
      old.close()
      const index = yield* open(path)
      assert.deepStrictEqual(yield* unlisted(index, "j1"), ["u1", "u2"])
      yield* index.committed("acme", [change("u1", false, 1)])
      assert.deepStrictEqual(yield* unlisted(index, "j2"), ["u2"])
    }))
})
