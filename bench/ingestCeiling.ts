/**
 * The ingestion ceiling: the benchmark's file parsed by the same parser the platform uses (csv-parse,
 * streaming) and inserted by a plain loop into SQLite (node:sqlite, WAL, synchronous=FULL like the
 * event store), one row per line, 10,000 rows a transaction. Lines the platform rejects (a column
 * missing, an unknown segment code, a time that is not a number) are skipped here too. What the
 * platform does beyond this — a job ledger, translation to loader records, the bus, one event a
 * profile, the relay to HISTORY — is what the ratio prices.
 */
import { createReadStream } from "node:fs"
import { DatabaseSync } from "node:sqlite"
import { parse } from "csv-parse"
import { segmentMap } from "./ingestFile.ts"

const batchRows = 10_000

export interface CeilingRun {
  readonly seconds: number
  readonly linesPerSecond: number
  readonly rows: number
  readonly skipped: number
}

export const ceiling = async (file: string, dbPath: string): Promise<CeilingRun> => {
  const db = new DatabaseSync(dbPath)
  db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE memberships (user_id TEXT NOT NULL, segment_ids TEXT NOT NULL, time INTEGER NOT NULL)")
  const insert = db.prepare("INSERT INTO memberships (user_id, segment_ids, time) VALUES (?, ?, ?)")
  const started = performance.now()
  let rows = 0
  let skipped = 0
  let inBatch = 0
  db.exec("BEGIN")
  const parser = createReadStream(file, { highWaterMark: 1 << 20 }).pipe(parse({ from_line: 2, relax_column_count: true }))
  for await (const record of parser as AsyncIterable<Array<string>>) {
    const ids = record.length === 3 && /^\d+$/.test(record[2]!) ? record[1]!.split("|").map((code) => segmentMap[code]) : undefined
    if (ids === undefined || ids.some((id) => id === undefined)) {
      skipped++
      continue
    }
    insert.run(record[0]!, ids.join(","), Number(record[2]))
    rows++
    if (++inBatch === batchRows) {
      db.exec("COMMIT; BEGIN")
      inBatch = 0
    }
  }
  db.exec("COMMIT")
  const seconds = (performance.now() - started) / 1000
  db.close()
  return { seconds, linesPerSecond: Math.round((rows + skipped) / seconds), rows, skipped }
}
