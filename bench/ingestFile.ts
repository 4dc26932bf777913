/**
 * The benchmark's partner and its file: CSV with a header, one cookie id, three segment codes in one
 * column separated by `|`, an epoch-seconds time, every line a new user; every 20th line malformed
 * (5%), in turn: a column missing, an unknown segment code, a time that is not a number. Lines are
 * 50 bytes, so 20 million lines make a 1 GB file. Written by streaming, never held in memory.
 */
import { createWriteStream } from "node:fs"
import { once } from "node:events"

/** The 100 segment codes the partner writes and the platform segment ids they map to. */
export const segmentCodes = Array.from({ length: 100 }, (_, k) => `s${String(k).padStart(2, "0")}`)
export const segmentMap: Record<string, string> = Object.fromEntries(segmentCodes.map((code, k) => [code, String(7_000_000_000 + k)]))

/** The partner's format spec (domain/ingest/FormatSpec.ts). */
export const formatSpec = {
  format: "delimited",
  delimiter: ",",
  header: true,
  userId: "user_id",
  idKind: "cookie",
  segments: { kind: "list", column: "segments", separator: "|" },
  time: { column: "ts", format: "epoch_seconds" },
  mode: "incremental"
} as const

export const header = "user_id,segments,ts"

/** The user of line `i` (0-based data line): 26 characters, distinct per `i % users`. */
export const userOf = (i: number, users: number) => `ck-${(i % users).toString(16).padStart(23, "0")}`

/** Three distinct codes for line i. */
const codesOf = (i: number) => {
  const a = (i * 7) % 100
  const b = (a + 1 + (i % 33)) % 100
  const c = (b + 1 + (i % 31)) % 100
  return `${segmentCodes[a]}|${segmentCodes[b]}|${segmentCodes[c]}`
}

/** Whether data line i (0-based) is one of the malformed 5%. */
export const isMalformed = (i: number) => i % 20 === 7

const lineOf = (i: number, users: number, epoch: number) => {
  const user = userOf(i, users)
  if (isMalformed(i)) {
    switch (Math.floor(i / 20) % 3) {
      case 0: return `${user},${codesOf(i)}\n`
      case 1: return `${user},${codesOf(i).slice(0, 8)}|zz9,${epoch}\n`
      default: return `${user},${codesOf(i)},soon-ish!!\n`
    }
  }
  return `${user},${codesOf(i)},${epoch}\n`
}

export interface GeneratedFile {
  readonly path: string
  readonly lines: number
  readonly users: number
  readonly bytes: number
  /** data lines that should be accepted, and the records they make (3 each) */
  readonly goodLines: number
  readonly records: number
}

/** Writes `lines` data lines (plus the header) for `users` distinct users; times are `epoch` (seconds). */
export const generateFile = async (path: string, lines: number, users: number, epoch: number): Promise<GeneratedFile> => {
  const out = createWriteStream(path, { highWaterMark: 1 << 20 })
  let bytes = 0
  let chunk = `${header}\n`
  let goodLines = 0
  for (let i = 0; i < lines; i++) {
    chunk += lineOf(i, users, epoch)
    if (!isMalformed(i)) goodLines++
    if (chunk.length >= 1 << 20 || i === lines - 1) {
      bytes += Buffer.byteLength(chunk)
      if (!out.write(chunk)) await once(out, "drain")
      chunk = ""
    }
  }
  out.end()
  await once(out, "finish")
  return { path, lines, users, bytes, goodLines, records: goodLines * 3 }
}
