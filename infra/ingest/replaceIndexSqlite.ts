/**
 * ReplaceIndex in a SQLite file shared by the processes on one DATA_DIR (DATA_DIR/ingest-members.db):
 * `partner_members` (partner, segment, profile, time of the add) and `job_listed` (job, segment, profile), both keyed
 * for the anti-join that finds what a replacement file does not list, read a page at a time.
 */
import { Effect, Layer } from "effect"
import { type Membership, ReplaceIndex, ReplaceIndexError } from "../../domain/ingest/ReplaceIndex.ts"
import { transaction } from "../sqliteTransaction.ts"
import { openSharedSqlite } from "./sqliteFile.ts"

const TABLES = `
  CREATE TABLE IF NOT EXISTS partner_members (
    partner TEXT NOT NULL, segment_id TEXT NOT NULL, profile_id TEXT NOT NULL, time INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (partner, segment_id, profile_id)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS job_listed (
    job_id TEXT NOT NULL, segment_id TEXT NOT NULL, profile_id TEXT NOT NULL,
    PRIMARY KEY (job_id, segment_id, profile_id)) WITHOUT ROWID;
`

export const layerSqlite = (options: { readonly path: string }) =>
  Layer.effect(ReplaceIndex, Effect.gen(function*() {
    const use = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: (cause) => new ReplaceIndexError({ operation, cause }) })
    const db = yield* Effect.acquireRelease(
      use("open", () => {
        const db = openSharedSqlite(options.path)
        db.exec(TABLES)
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
    const forget = db.prepare("DELETE FROM job_listed WHERE job_id = ?")
    const unlisted = db.prepare(`
      SELECT m.segment_id AS segmentId, m.profile_id AS profileId FROM partner_members m
      WHERE m.partner = ? AND m.segment_id IN (SELECT DISTINCT segment_id FROM job_listed WHERE job_id = ?)
        AND (m.segment_id, m.profile_id) > (?, ?)
        AND NOT EXISTS (SELECT 1 FROM job_listed l WHERE l.job_id = ? AND l.segment_id = m.segment_id AND l.profile_id = m.profile_id)
      ORDER BY m.segment_id, m.profile_id LIMIT ?`)
    return ReplaceIndex.of({
      committed: (partner, changes) =>
        use("committed", () => transaction(db, () => {
          for (const c of changes) (c.present ? present : absent).run(partner, c.segmentId, c.profileId, c.time)
        })),
      listed: (jobId, memberships) =>
        use("listed", () => transaction(db, () => {
          for (const m of memberships) list.run(jobId, m.segmentId, m.profileId)
        })),
      unlisted: (partner, jobId, page) =>
        use("unlisted", () =>
          unlisted.all(partner, jobId, page.after?.segmentId ?? "", page.after?.profileId ?? "", jobId, page.limit) as unknown as Array<Membership>),
      forget: (jobId) => use("forget", () => void forget.run(jobId))
    })
  }))
