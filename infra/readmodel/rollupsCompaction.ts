/**
 * The rollups' compaction, on their writer thread (rollupsWriterThread.ts): rows whose bucket aged past a
 * horizon (RollupTiers in projections/events/rollupBuckets.ts) are rolled into their hour or day, a step
 * (one transaction) at a time, the writer taking batches between steps. Its marks are in `rollup_tiers`:
 * `minutes` and `hours`, set as a range is begun, below which rows may be rolled already (queries and
 * late events follow them: rollupsFile.ts, tierMarks), and `minutes-done` and `hours-done`, set once every
 * set of the range is done, from which it goes on after a restart. Where it is inside a range is kept in
 * memory; a step done again finds nothing to move. (Before, found by the re-attack of stop 27: one mark,
 * moved at the end; a compaction stopped halfway, then a raised horizon, answered minute queries over
 * rows rolled into hours, each as its hour's first minute, for good.)
 *
 * Loaded by the writer thread: only erasable TypeScript and `.ts` imports, none of `effect`.
 */
import type { DatabaseSync } from "node:sqlite"
import { bucketOf, bucketSql, minutesOf, type TierFloors } from "../../projections/events/rollupBuckets.ts"
import { transaction } from "../sqliteTransaction.ts"
import { bucketTables, noMark, type TierMarks } from "./rollupsFile.ts"

/**
 * One step of rolling rows past a horizon (RollupTiers) into their hour or day: a few dimension sets'
 * rows, or a span of one set's, one transaction, so that batches are written between steps.
 */
export interface RollupCompact {
  readonly kind: "compact"
  readonly nowMillis: number
  readonly setsPerStep: number
  /** rows one step should move about: fewer sets a step when they hold more */
  readonly rowsPerStep: number
}

/** How a step went: rows moved (none when it moved a mark), `done` when nothing is left to roll up at that time. */
export type Compacted = { readonly _tag: "Compacted"; readonly moved: number; readonly done: boolean }


/** Rolls the rows of some dimension sets (ids in (?, ?]), in a range of minutes [?, ?), into buckets of `width` minutes: (insert, delete), and counts them first. */
const rollUpSql = (width: number) =>
  bucketTables.map(({ table, keys, sums }) => {
    const bucket = bucketSql("minute", width)
    const where = `dim_set IN (SELECT id FROM dim_sets WHERE id > ? AND id <= ?) AND minute >= ? AND minute < ? AND minute <> ${bucket}`
    const columns = ["dim_set", "minute", ...keys, ...sums].join(", ")
    const select = `SELECT dim_set, ${bucket}${keys.map((k) => `, ${k}`).join("")}${sums.map((c) => `, SUM(${c})`).join("")}
      FROM ${table} WHERE ${where} GROUP BY dim_set, ${bucket}${keys.map((k) => `, ${k}`).join("")}`
    return {
      insert: sums.length === 0
        ? `INSERT OR IGNORE INTO ${table} (${columns}) ${select}`
        : `INSERT INTO ${table} (${columns}) ${select} ON CONFLICT DO UPDATE SET ${sums.map((c) => `${c} = ${c} + excluded.${c}`).join(", ")}`,
      delete: `DELETE FROM ${table} WHERE ${where}`,
      // counted up to a bound (?): past it, the count is all a step needs, and counting on would cost as much as rolling
      count: `SELECT COUNT(*) AS n FROM (SELECT 1 FROM ${table} WHERE ${where} LIMIT ?)`
    }
  })

/** The compaction of the writer's connection and its marks; `floorsAt` the horizons at a time (the writer's latest clock). */
export const makeCompaction = (db: DatabaseSync, marks: TierMarks, floorsAt: (nowMillis: number) => TierFloors) => {
  const lastSetOf = db.prepare("SELECT MAX(id) AS id FROM (SELECT id FROM dim_sets WHERE id > ? ORDER BY id LIMIT ?)")
  const rollUp = new Map([minutesOf.hour, minutesOf.day].map((width) =>
    [width, rollUpSql(width).map((sql) => ({ insert: db.prepare(sql.insert), delete: db.prepare(sql.delete), count: db.prepare(sql.count) }))] as const))
  // the first minute of a set's rows (ids in [?, ?]), where a file never compacted starts
  const firstMinute = db.prepare(`SELECT MIN(m) AS minute FROM (${bucketTables.map(({ table }) =>
    `SELECT MIN(minute) AS m FROM ${table} WHERE dim_set IN (SELECT id FROM dim_sets WHERE id >= ?1 AND id <= ?2)`).join(" UNION ALL ")})`)
  /**
   * Where the compaction is: the range of minutes it rolls up, the sets done in it, how many sets a step
   * takes, and how far into the range the next set is done (when one set holds more than a step).
   */
  let cursor: {
    readonly from: number
    readonly to: number
    readonly width: number
    readonly afterSet: number
    readonly sets: number
    readonly within?: number | undefined
  } | undefined
  /** Rows to roll up of the sets (afterSet, upTo] in [from, to): counted up to `bound` a table. */
  const rowsIn = (width: number, afterSet: number, upTo: number, from: number, to: number, bound: number) =>
    rollUp.get(width)!.reduce((n, table) => n + (table.count.get(afterSet, upTo, from, to, bound + 1) as { n: number }).n, 0)
  /** The spans of minutes one set's rows are rolled in when they are more than a step: the widest that is few enough, down to an hour. */
  const spans = [30 * minutesOf.day, 7 * minutesOf.day, minutesOf.day, 6 * minutesOf.hour, minutesOf.hour]

  /**
   * Hours past the hour horizon into days first (the minutes there with them), then minutes past the
   * minute horizon into hours; a few dimension sets a step: as many as hold at most `rowsPerStep` rows
   * to roll, counted first (up to `setsPerStep`), and when one set holds more, a span of its minutes (a
   * bucket's rows may move in pieces: each adds to its row), down to an hour. The writer takes no batch
   * while a step runs. The mark moves once every set is done. (Before, found by stop 27's outside
   * attack: 500 sets a step whatever they held; one set of 2,160,000 events held the writer 2.6 s.)
   */
  const compactStep = (c: RollupCompact): { readonly answer: Compacted; readonly cursor: typeof cursor } => {
    const floors = floorsAt(c.nowMillis)
    const minutesDone = marks.of("minutes-done")
    const hoursDone = marks.of("hours-done")
    const tier = hoursDone < floors.hours
      ? { from: hoursDone, to: floors.hours, width: minutesOf.day, marks: [["hours", floors.hours], ["minutes", floors.hours]] as const }
      : Math.max(minutesDone, floors.hours) < floors.minutes
      ? { from: Math.max(minutesDone, floors.hours), to: floors.minutes, width: minutesOf.hour, marks: [["minutes", floors.minutes]] as const }
      : undefined
    if (tier === undefined) return { answer: { _tag: "Compacted", moved: 0, done: true }, cursor: undefined }
    // begun: below these, rows may be rolled from now on
    for (const [name, below] of tier.marks) marks.raise(name, below)
    const { to, width } = tier
    const at = cursor !== undefined && cursor.from === tier.from && cursor.to === to && cursor.width === width
      ? cursor
      : { from: tier.from, to, width, afterSet: 0, sets: c.setsPerStep, within: undefined }
    let sets = at.sets
    let upTo = (lastSetOf.get(at.afterSet, sets) as { id: number | null }).id
    if (upTo === null) {
      for (const [name, below] of tier.marks) marks.raise(`${name}-done`, below)
      return { answer: { _tag: "Compacted", moved: 0, done: false }, cursor: undefined }
    }
    const start = at.within ?? at.from
    let rows = rowsIn(width, at.afterSet, upTo, start, to, c.rowsPerStep)
    while (rows > c.rowsPerStep && sets > 1) {
      sets = Math.max(1, Math.floor(sets * c.rowsPerStep / rows))
      upTo = (lastSetOf.get(at.afterSet, sets) as { id: number }).id
      rows = rowsIn(width, at.afterSet, upTo, start, to, c.rowsPerStep)
    }
    let end = to
    if (rows > c.rowsPerStep) {
      // one set, more than a step: the widest span of its minutes from where it was left that is few enough
      const first = start === noMark ? (firstMinute.get(upTo, upTo) as { minute: number | null }).minute ?? to : start
      for (const span of spans) {
        end = Math.min(to, bucketOf(first, span) + span)
        if (rowsIn(width, at.afterSet, upTo, start, end, c.rowsPerStep) <= c.rowsPerStep) break
      }
    }
    let moved = 0
    for (const table of rollUp.get(width)!) {
      table.insert.run(at.afterSet, upTo, start, end)
      moved += Number(table.delete.run(at.afterSet, upTo, start, end).changes)
    }
    const next = Math.max(1, Math.min(c.setsPerStep, Math.floor(sets * c.rowsPerStep / Math.max(rows, 1))))
    return {
      answer: { _tag: "Compacted", moved, done: false },
      cursor: end < to ? { ...at, sets: 1, within: end } : { from: at.from, to, width, afterSet: upTo, sets: next }
    }
  }

  return {
    /** One step, in one transaction; where it got is kept once it committed. */
    step: (c: RollupCompact): Compacted => {
      const step = transaction(db, () => compactStep(c))
      cursor = step.cursor
      return step.answer
    }
  }
}
