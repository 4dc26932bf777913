import { assert, describe, it } from "@effect/vitest"
import { DatabaseSync } from "node:sqlite"
import { join } from "node:path"
import { Context, Effect, Layer } from "effect"
import { type Membership, type MembershipChange, ReplaceIndex, type UnlistedPage } from "../../../domain/ingest/ReplaceIndex.ts"
import { layerSqlite } from "../../../infra/ingest/replaceIndexSqlite.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const open = (path: string) => Effect.map(Layer.build(Layer.fresh(layerSqlite({ path }))), (context) => Context.get(context, ReplaceIndex))

const change = (profileId: string, present: boolean, time: number): MembershipChange => ({ segmentId: "1", profileId, present, time })

/** A file as stop 23 left it (members without their time, no job segments), then `sql`. */
const olderFile = (sql: string) =>
  Effect.gen(function*() {
    const path = join(yield* tempDir("replace-index"), "members.db")
    const old = new DatabaseSync(path)
    old.exec(`CREATE TABLE partner_members (partner TEXT NOT NULL, segment_id TEXT NOT NULL, profile_id TEXT NOT NULL,
      PRIMARY KEY (partner, segment_id, profile_id)) WITHOUT ROWID; ${sql}`)
    old.close()
    return path
  })

/** Every membership `job` does not list, looked at `scan` at a time. */
const allUnlisted = (index: ReplaceIndex["Service"], job: string, scan = 100) =>
  Effect.gen(function*() {
    const found: Array<string> = []
    let after: Membership | undefined = undefined
    do {
      const page: UnlistedPage = yield* index.unlisted("acme", job, { after, scan })
      found.push(...page.unlisted.map((m) => `${m.segmentId}/${m.profileId}`))
      after = page.next
    } while (after !== undefined)
    return found
  })

/** What a replacement job listing nothing of segment 1 but `u0` would remove. */
const unlisted = (index: ReplaceIndex["Service"], job: string) =>
  Effect.gen(function*() {
    yield* index.listed(job, [{ segmentId: "1", profileId: "u0" }])
    const found = yield* allUnlisted(index, job)
    yield* index.forget(job)
    return found.map((m) => m.slice("1/".length))
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
      const index = yield* open(yield* olderFile("INSERT INTO partner_members VALUES ('acme', '1', 'u1'), ('acme', '1', 'u2')"))
      assert.deepStrictEqual(yield* unlisted(index, "j1"), ["u1", "u2"])
      yield* index.committed("acme", [change("u1", false, 1)])
      assert.deepStrictEqual(yield* unlisted(index, "j2"), ["u2"])
    }))

  it.effect("looks at a bounded number of memberships a call, across the segments the job names, whether it lists anyone in them or not", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("replace-index"), "members.db")
      const index = yield* open(path)
      const members = (segmentId: string, n: number) =>
        Array.from({ length: n }, (_, i) => ({ segmentId, profileId: `p${String(i).padStart(2, "0")}`, present: true, time: 1 }))
      yield* index.committed("acme", [...members("1", 10), ...members("2", 3), ...members("3", 4)])
      // the job lists every other member of 1, and names 2 with no one listed; 3 it does not name
      yield* index.listed("j1", members("1", 10).filter((_, i) => i % 2 === 0))
      yield* index.named("j1", ["2"])
      const pages: Array<number> = []
      let after: Membership | undefined = undefined
      do {
        const page: UnlistedPage = yield* index.unlisted("acme", "j1", { after, scan: 3 })
        pages.push(page.unlisted.length)
        after = page.next
      } while (after !== undefined)
      // the 13 members of 1 and 2 looked at 3 a call (the fourth call goes on from 1 into 2), 3 never
      assert.deepStrictEqual(pages, [1, 2, 1, 3, 1])
      assert.deepStrictEqual(yield* allUnlisted(index, "j1", 1), ["1/p01", "1/p03", "1/p05", "1/p07", "1/p09", "2/p00", "2/p01", "2/p02"])
      // a replacement's removals are counted with them, across a reopening (a restart among them), until forgotten
      yield* index.removed("acme", "j1", [change("p01", false, 2)])
      yield* index.removed("acme", "j1", [change("p03", false, 2), change("p05", false, 2)])
      assert.strictEqual(yield* (yield* open(path)).removedBy("j1"), 3)
      assert.deepStrictEqual((yield* allUnlisted(index, "j1")).slice(0, 2), ["1/p07", "1/p09"])
      // forgotten a step at a time, every row goes
      yield* index.listed("j2", members("9", 25_000))
      yield* index.forget("j2")
      yield* index.forget("j1")
      const db = new DatabaseSync(path)
      const left = db.prepare("SELECT (SELECT COUNT(*) FROM job_listed) AS listed, (SELECT COUNT(*) FROM job_segments) AS named, (SELECT COUNT(*) FROM job_removed) AS removed").get()
      db.close()
      assert.deepStrictEqual({ ...left }, { listed: 0, named: 0, removed: 0 })
    }))

  it.effect("opens a file from before the segments a job names were kept: its unfinished jobs name those they list", () =>
    Effect.gen(function*() {
      const index = yield* open(yield* olderFile(`CREATE TABLE job_listed (job_id TEXT NOT NULL, segment_id TEXT NOT NULL, profile_id TEXT NOT NULL,
        PRIMARY KEY (job_id, segment_id, profile_id)) WITHOUT ROWID;
        INSERT INTO partner_members VALUES ('acme', '1', 'u1'), ('acme', '1', 'u2'), ('acme', '2', 'u1');
        INSERT INTO job_listed VALUES ('j1', '1', 'u1')`))
      assert.deepStrictEqual(yield* allUnlisted(index, "j1"), ["1/u2"])
    }))
})
