/**
 * ReplaceIndex in a SQLite file shared by the processes on one DATA_DIR (DATA_DIR/ingest-members.db):
 * `partner_members` (partner, segment, profile, time of the add), `job_listed` (job, segment, profile) and
 * `job_segments` (job, segment), keyed for the anti-join that finds what a replacement file does not list,
 * read a bounded range at a time; `segment_replaced` (partner, segment, time of its last replacement).
 */
import { Effect, Layer } from "effect"
import { type Membership, type MembershipChange, ReplaceIndex, ReplaceIndexError } from "../../domain/ingest/ReplaceIndex.ts"
import { transaction } from "../sqliteTransaction.ts"
import { openSharedSqlite } from "./sqliteFile.ts"

const TABLES = `
  CREATE TABLE IF NOT EXISTS partner_members (
    partner TEXT NOT NULL, segment_id TEXT NOT NULL, profile_id TEXT NOT NULL, time INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (partner, segment_id, profile_id)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS job_listed (
    job_id TEXT NOT NULL, segment_id TEXT NOT NULL, profile_id TEXT NOT NULL,
    PRIMARY KEY (job_id, segment_id, profile_id)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS job_segments (
    job_id TEXT NOT NULL, segment_id TEXT NOT NULL, PRIMARY KEY (job_id, segment_id)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS job_removed (job_id TEXT PRIMARY KEY, removed INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS segment_replaced (
    partner TEXT NOT NULL, segment_id TEXT NOT NULL, time INTEGER NOT NULL, PRIMARY KEY (partner, segment_id)) WITHOUT ROWID;
`

/** Rows one statement of `forget` deletes at most: 1,000,000 at once held the event loop for 0.6 s. */
const forgetStep = 10_000

export const layerSqlite = (options: { readonly path: string }) =>
  Layer.effect(ReplaceIndex, Effect.gen(function*() {
    const use = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: (cause) => new ReplaceIndexError({ operation, cause }) })
    const db = yield* Effect.acquireRelease(
      use("open", () => {
        const db = openSharedSqlite(options.path)
        const hadSegments = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'job_segments'").get() !== undefined
        db.exec(TABLES)
        // A file from before the segments a job names were kept apart (stop 24): its unfinished jobs name those they list
        if (!hadSegments) db.exec("INSERT OR IGNORE INTO job_segments SELECT DISTINCT job_id, segment_id FROM job_listed")
        // A file from before rows kept their add's time (stop 24): its rows count as added at the epoch.
        const columns = db.prepare("SELECT name FROM pragma_table_info('partner_members')").all() as Array<{ name: string }>
        if (!columns.some((c) => c.name === "time")) db.exec("ALTER TABLE partner_members ADD COLUMN time INTEGER NOT NULL DEFAULT 0")
        return db
      }),
      (db) => Effect.sync(() => db.close())
    )
    // The newest change decides; at the same time the add (ReplaceIndex.committed).
    const present = db.prepare(`INSERT INTO partner_members VALUES (?, ?, ?, ?)
      ON CONFLICT DO UPDATE SET time = max(time, excluded.time)`)
    const absent = db.prepare("DELETE FROM partner_members WHERE partner = ? AND segment_id = ? AND profile_id = ? AND time < ?")
    const list = db.prepare("INSERT OR IGNORE INTO job_listed VALUES (?, ?, ?)")
    const name = db.prepare("INSERT OR IGNORE INTO job_segments VALUES (?, ?)")
    const forgetListed = db.prepare(`DELETE FROM job_listed WHERE job_id = ? AND (segment_id, profile_id) IN
      (SELECT segment_id, profile_id FROM job_listed WHERE job_id = ? LIMIT ${forgetStep})`)
    const forgetNamed = db.prepare("DELETE FROM job_segments WHERE job_id = ?")
    const countRemoved = db.prepare("INSERT INTO job_removed VALUES (?, ?) ON CONFLICT DO UPDATE SET removed = removed + excluded.removed")
    const removedOf = db.prepare("SELECT removed FROM job_removed WHERE job_id = ?")
    const forgetRemoved = db.prepare("DELETE FROM job_removed WHERE job_id = ?")
    const replace = db.prepare(`INSERT INTO segment_replaced SELECT ?, segment_id, ? FROM job_segments WHERE job_id = ?
      ON CONFLICT DO UPDATE SET time = max(time, excluded.time)`)
    const replacedOf = db.prepare("SELECT time FROM segment_replaced WHERE partner = ? AND segment_id = ?")
    const namedFrom = db.prepare("SELECT segment_id AS segmentId FROM job_segments WHERE job_id = ? AND segment_id >= ? ORDER BY segment_id")
    // The partner's members of one segment after a profile, each with whether the job lists it: a bounded
    // range of the primary key, one primary-key probe a row. (One statement over every segment the job
    // names, those found by a DISTINCT over its whole list at each page, took 1.4 s a page at 1,000,000
    // pairs listed and grew with the square of the file: stop 24's outside attack.)
    const membersAfter = db.prepare(`
      SELECT m.profile_id AS profileId,
        EXISTS (SELECT 1 FROM job_listed l WHERE l.job_id = ? AND l.segment_id = m.segment_id AND l.profile_id = m.profile_id) AS listed
      FROM partner_members m WHERE m.partner = ? AND m.segment_id = ? AND m.profile_id > ?
      ORDER BY m.profile_id LIMIT ?`)

    const scan = (partner: string, jobId: string, after: Membership | undefined, budget: number) => {
      const unlisted: Array<Membership> = []
      const segments = namedFrom.all(jobId, after?.segmentId ?? "") as Array<{ segmentId: string }>
      let left = budget
      for (const { segmentId } of segments) {
        const from = after !== undefined && after.segmentId === segmentId ? after.profileId : ""
        const rows = membersAfter.all(jobId, partner, segmentId, from, left) as Array<{ profileId: string; listed: number }>
        for (const row of rows) if (row.listed === 0) unlisted.push({ segmentId, profileId: row.profileId })
        left -= rows.length
        if (left === 0) return { unlisted, next: { segmentId, profileId: rows.at(-1)!.profileId } }
      }
      return { unlisted, next: undefined }
    }

    const commit = (partner: string, changes: ReadonlyArray<MembershipChange>) => {
      for (const c of changes) (c.present ? present : absent).run(partner, c.segmentId, c.profileId, c.time)
    }

    return ReplaceIndex.of({
      committed: (partner, changes) => use("committed", () => transaction(db, () => commit(partner, changes))),
      removed: (partner, jobId, changes) =>
        use("removed", () => transaction(db, () => {
          commit(partner, changes)
          countRemoved.run(jobId, changes.length)
        })),
      removedBy: (jobId) => use("removed by", () => Number((removedOf.get(jobId) as { removed: number } | undefined)?.removed ?? 0)),
      listed: (jobId, memberships) =>
        use("listed", () => transaction(db, () => {
          const segments = new Set<string>()
          for (const m of memberships) {
            list.run(jobId, m.segmentId, m.profileId)
            segments.add(m.segmentId)
          }
          for (const segmentId of segments) name.run(jobId, segmentId)
        })),
      named: (jobId, segmentIds) =>
        use("named", () => transaction(db, () => {
          for (const segmentId of segmentIds) name.run(jobId, segmentId)
        })),
      unlisted: (partner, jobId, page) => use("unlisted", () => scan(partner, jobId, page.after, Math.max(1, page.scan))),
      replaced: (partner, jobId, time) => use("replaced", () => void replace.run(partner, time, jobId)),
      replacedAt: (partner, segmentIds) =>
        use("replaced at", () =>
          new Map(segmentIds.flatMap((segmentId) => {
            const row = replacedOf.get(partner, segmentId) as { time: number } | undefined
            return row === undefined ? [] : [[segmentId, Number(row.time)] as const]
          }))),
      forget: (jobId) =>
        Effect.gen(function*() {
          // a step at a time, the event loop free between them
          while ((yield* use("forget", () => Number(forgetListed.run(jobId, jobId).changes))) === forgetStep) yield* Effect.yieldNow
          yield* use("forget", () => {
            forgetNamed.run(jobId)
            forgetRemoved.run(jobId)
          })
        })
    })
  }))
