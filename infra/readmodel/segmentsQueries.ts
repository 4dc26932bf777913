/**
 * Reads of the segment read model (SegmentReadModel) on the read model's SQLite file, through a
 * connection of their own (WAL: reads do not wait for the projection's writes). Each read is one
 * read transaction, so members, partners and days come from the same commit. Built after the read
 * model (it needs ProjectionStore), which creates the tables.
 */
import { DatabaseSync } from "node:sqlite"
import { Effect, Layer, Option } from "effect"
import { type PartnerSegment, type Segment, SegmentReadModel } from "../../projections/ingest/segments.ts"
import { ProjectionStore } from "../../projections/ProjectionStore.ts"
import { ReadModelError } from "../../projections/ReadModelError.ts"

const open = (path: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const db = new DatabaseSync(path, { readOnly: true, timeout: 5_000 })
        db.exec("PRAGMA busy_timeout = 5000")
        return db
      },
      catch: (cause) => new ReadModelError({ operation: "open", cause })
    }),
    (db) => Effect.sync(() => db.close())
  )

/** A read transaction: the statements in `f` see one snapshot of the file. */
const snapshot = <A>(db: DatabaseSync, f: () => A): A => {
  db.exec("BEGIN")
  try {
    return f()
  } finally {
    db.exec("COMMIT")
  }
}

export const layerSqlite = (options: { readonly path: string }) =>
  Layer.effect(SegmentReadModel, Effect.gen(function*() {
    yield* ProjectionStore // the read model is open: its tables exist
    const db = yield* open(options.path)
    const use = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: (cause) => new ReadModelError({ operation, cause }) })

    const members = db.prepare("SELECT members FROM segments WHERE segment_id = ?")
    const partners = db.prepare("SELECT partner, members FROM segment_partners WHERE segment_id = ? AND members > 0 ORDER BY partner")
    const days = db.prepare("SELECT day, added, removed, expired FROM segment_days WHERE segment_id = ? AND day >= ? AND day <= ? ORDER BY day")
    const firstPage = db.prepare(
      "SELECT segment_id, members FROM segment_partners WHERE partner = ? ORDER BY length(segment_id), segment_id LIMIT ?"
    )
    const nextPage = db.prepare(
      `SELECT segment_id, members FROM segment_partners WHERE partner = ? AND (length(segment_id), segment_id) > (length(?), ?)
       ORDER BY length(segment_id), segment_id LIMIT ?`
    )

    return SegmentReadModel.of({
      get: (segmentId, range) =>
        use("segment", () =>
          snapshot(db, () => {
            const row = members.get(segmentId) as { members: number } | undefined
            if (row === undefined) return Option.none<Segment>()
            return Option.some({
              segmentId,
              members: row.members,
              partners: (partners.all(segmentId) as unknown as Segment["partners"]).map(({ partner, members }) => ({ partner, members })),
              days: (days.all(segmentId, range.from, range.to) as unknown as Segment["days"]).map(({ day, added, removed, expired }) => ({
                day,
                added,
                removed,
                expired
              }))
            })
          })),
      ofPartner: (partner, { limit, after }) =>
        use("partnerSegments", () => {
          const rows = (after === undefined ? firstPage.all(partner, limit + 1) : nextPage.all(partner, after, after, limit + 1)) as unknown as Array<
            { segment_id: string; members: number }
          >
          const items: Array<PartnerSegment> = rows.slice(0, limit).map((row) => ({ segmentId: row.segment_id, members: row.members }))
          return { items, more: rows.length > limit }
        })
    })
  }))
