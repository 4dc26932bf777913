/**
 * One parsed line of a partner's file + the partner's config → loader records, or why not (a
 * LineError naming the column). Pure and deterministic (the receive time arrives as an argument), so
 * the translator may run it anywhere, workers included. Parsing bytes into a row (csv-parse, JSON)
 * is infra/ingest/translateStream.ts's part.
 */
import { Result, Schema } from "effect"
import { IsoDateTime } from "../isoDateTime.ts"
import { validate } from "../validation.ts"
import type { Column, FormatSpec, PartnerConfig, TimeFormat } from "./FormatSpec.ts"
import type { LineError } from "./Job.ts"
import { IdKind, LoaderRecord, normalizeUserId, type Operation, TtlSeconds } from "./LoaderRecord.ts"

/** A parsed line: a delimited line's fields, or a JSON Lines object. */
export type Row = ReadonlyArray<string> | Readonly<Record<string, unknown>>

/** How a column is read from a row, and how errors name it (its header name, number or field). */
interface Accessor {
  readonly name: string | number
  readonly get: (row: Row) => unknown
}

/** A partner config made ready for its file: columns resolved against the header (when it has one). */
export interface CompiledFormat {
  readonly config: PartnerConfig
  /** the number of fields every delimited line must have (exactly), or at least (positional without columnCount) */
  readonly fieldCount: { readonly exactly: boolean; readonly count: number } | undefined
  readonly column: (column: Column) => Accessor
}

/** Whether the spec needs a header line before its rows. */
export const hasHeader = (spec: FormatSpec): boolean => spec.format === "delimited" && spec.header

const columnsNamed = (spec: FormatSpec): ReadonlyArray<Column> => {
  const out: Array<Column> = [spec.userId]
  if (typeof spec.idKind !== "string") out.push(spec.idKind.column)
  if (spec.segments.kind === "columns") out.push(...spec.segments.columns.map((c) => c.column))
  else out.push(spec.segments.column)
  if (spec.op !== undefined && typeof spec.op !== "string") out.push(spec.op.column)
  if (spec.time !== undefined) out.push(spec.time.column)
  if (spec.ttl !== undefined) out.push(spec.ttl.column)
  return out
}

/**
 * Resolves the spec's columns: by the header's names (the header must name every column the spec
 * uses; otherwise the file does not match its spec), by position, or by JSON field.
 */
export const compileFormat = (config: PartnerConfig, header?: ReadonlyArray<string>): Result.Result<CompiledFormat, string> =>
  Result.map(resolveColumns(config, header), (compiled) => {
    // accessors made once per column, not once per line
    const made = new Map<Column, Accessor>()
    return {
      ...compiled,
      column: (column) => {
        let accessor = made.get(column)
        if (accessor === undefined) made.set(column, accessor = compiled.column(column))
        return accessor
      }
    }
  })

/** A name in a message: quoted, and cut at 64 characters. */
const quoted = (name: string) => JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name)

/**
 * The names a header holds, for a message: the first 20, each cut. A file whose line breaks were CR alone
 * was one header line, and the message repeated up to 64 KiB of the file (stop 24's outside attack).
 */
const shown = (names: ReadonlyArray<string>) =>
  names.slice(0, 20).map(quoted).join(", ") + (names.length > 20 ? ` and ${names.length - 20} more` : "")

const resolveColumns = (config: PartnerConfig, header?: ReadonlyArray<string>): Result.Result<CompiledFormat, string> => {
  const spec = config.formatSpec
  if (spec.format === "jsonl") {
    return Result.succeed({
      config,
      fieldCount: undefined,
      column: (column) => ({ name: column, get: (row) => Array.isArray(row) ? undefined : (row as Record<string, unknown>)[String(column)] })
    })
  }
  if (!spec.header) {
    const highest = Math.max(...columnsNamed(spec).map(Number))
    return Result.succeed({
      config,
      fieldCount: spec.columnCount === undefined ? { exactly: false, count: highest } : { exactly: true, count: spec.columnCount },
      column: (column) => ({ name: column, get: (row) => (row as ReadonlyArray<string>)[Number(column) - 1] })
    })
  }
  if (header === undefined) return Result.fail("the spec has a header: line 1 must name the columns")
  const names = header.map((h) => h.trim())
  const index = new Map<string, number>()
  names.forEach((name, i) => { if (!index.has(name)) index.set(name, i) })
  const wanted = [...new Set(columnsNamed(spec).map(String))]
  const missing = wanted.filter((name) => !index.has(name))
  if (missing.length > 0) {
    return Result.fail(`the header does not match the spec: no column ${missing.map(quoted).join(", ")} (found ${shown(names)})`)
  }
  // A column the spec reads named twice: which one it means cannot be told (the first was read, silently)
  const twice = wanted.filter((name) => names.indexOf(name) !== names.lastIndexOf(name))
  if (twice.length > 0) {
    return Result.fail(`the header does not match the spec: it names ${twice.map((name) => `${quoted(name)} at columns ${names.flatMap((n, i) => n === name ? [i + 1] : []).join(" and ")}`).join(", ")}`)
  }
  return Result.succeed({
    config,
    fieldCount: { exactly: true, count: names.length },
    column: (column) => {
      const i = index.get(String(column)) ?? -1
      return { name: String(column), get: (row) => (row as ReadonlyArray<string>)[i] }
    }
  })
}

type Rejection = Omit<LineError, "line">

const reject = (reason: string, column?: string | number): Result.Result<never, Rejection> =>
  Result.fail(column === undefined ? { reason } : { column, reason })

/** A cell as text: strings trimmed, numbers and booleans written out, nothing for empty/absent. */
const text = (value: unknown): string | undefined => {
  if (typeof value === "string") {
    const t = value.trim()
    return t.length === 0 ? undefined : t
  }
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value)
  return undefined
}

/** A JSON array or object where a value is wanted: refused, not taken for "no value" (a TTL of `[]` was the default TTL). */
const nested = (value: unknown): boolean => typeof value === "object" && value !== null

const truthy = new Set(["1", "true", "yes", "y", "x", "t"])
const falsy = new Set(["0", "false", "no", "n", "f"])

const parseTime = (raw: string, format: TimeFormat): string | undefined => {
  switch (format) {
    case "rfc3339":
      return isIsoDateTime(raw) ? new Date(raw).toISOString() : undefined
    case "epoch_seconds":
    case "epoch_millis": {
      if (!/^-?\d{1,16}(\.\d+)?$/.test(raw)) return undefined
      const ms = format === "epoch_seconds" ? Number(raw) * 1000 : Number(raw)
      const date = new Date(Math.trunc(ms))
      return Number.isNaN(date.getTime()) || ms < 0 ? undefined : date.toISOString()
    }
  }
}

const isIsoDateTime = Schema.is(IsoDateTime)
const isTtl = Schema.is(TtlSeconds)
const parseTtl = (raw: string): number | undefined => {
  const n = /^\d{1,9}$/.test(raw) ? Number(raw) : Number.NaN
  return isTtl(n) ? n : undefined
}

const isIdKind = Schema.is(IdKind)

/** One segment change a line names: its partner code, and the op/TTL a pair gave it. */
interface Named {
  readonly code: string
  readonly op?: Operation
  readonly ttl?: number
}

const opOf = (raw: string, values: Readonly<Record<string, Operation>> | undefined): Operation | undefined => {
  if (values !== undefined) return Object.hasOwn(values, raw) ? values[raw] : undefined
  const lower = raw.toLowerCase()
  return lower === "add" || lower === "remove" ? lower : undefined
}

/** The codes (with per-pair op or TTL) a row names, or why not. */
const segmentsOf = (compiled: CompiledFormat, row: Row): Result.Result<ReadonlyArray<Named>, Rejection> => {
  const spec = compiled.config.formatSpec
  const segments = spec.segments
  switch (segments.kind) {
    case "list": {
      const cell = compiled.column(segments.column)
      const value = cell.get(row)
      const codes = Array.isArray(value) ? value.map(text) : (text(value) ?? "").split(segments.separator).map(text)
      if (codes.some((c) => c === undefined) && Array.isArray(value)) return reject("segment codes must be strings", cell.name)
      return Result.succeed(codes.filter((c): c is string => c !== undefined).map((code) => ({ code })))
    }
    case "columns": {
      const out: Array<Named> = []
      for (const { code, column } of segments.columns) {
        const cell = compiled.column(column)
        const raw = text(cell.get(row))?.toLowerCase()
        if (raw === undefined || falsy.has(raw)) continue
        if (!truthy.has(raw)) return reject(`not a membership flag: ${JSON.stringify(raw)} (1/0, true/false, yes/no)`, cell.name)
        out.push({ code })
      }
      return Result.succeed(out)
    }
    case "pairs": {
      const cell = compiled.column(segments.column)
      const value = cell.get(row)
      const pairs: Array<readonly [string, string | undefined]> = []
      if (value !== null && typeof value === "object" && !Array.isArray(value)) {
        for (const [k, v] of Object.entries(value)) {
          if (nested(v)) return reject(`segment ${JSON.stringify(k.trim())}: a ${Array.isArray(v) ? "list" : "object"} where a value is wanted`, cell.name)
          pairs.push([k.trim(), text(v)])
        }
      } else {
        for (const part of (text(value) ?? "").split(segments.separator ?? ";")) {
          if (part.trim().length === 0) continue
          const at = part.indexOf(segments.assign ?? "=")
          pairs.push(at < 0 ? [part.trim(), undefined] : [part.slice(0, at).trim(), text(part.slice(at + (segments.assign ?? "=").length))])
        }
      }
      const out: Array<Named> = []
      for (const [code, raw] of pairs) {
        if (code.length === 0) return reject("a pair without a segment code", cell.name)
        if (raw === undefined) {
          out.push({ code })
        } else if (segments.value === "ttl") {
          const ttl = parseTtl(raw)
          if (ttl === undefined) return reject(`segment ${JSON.stringify(code)}: TTL ${JSON.stringify(raw)} is not whole seconds from 1 to 31622400`, cell.name)
          out.push({ code, ttl })
        } else {
          const op = opOf(raw, spec.op !== undefined && typeof spec.op !== "string" ? spec.op.values : undefined)
          if (op === undefined) return reject(`segment ${JSON.stringify(code)}: unknown operation ${JSON.stringify(raw)}`, cell.name)
          out.push({ code, op })
        }
      }
      return Result.succeed(out)
    }
  }
}

/**
 * A row → its loader records (one a segment, in the order the line names them; a segment named twice
 * counts once, the last naming winning), or the reason it is rejected. User ids are normalised per
 * kind; unknown segment codes are rejected, never guessed; a line naming no segment is rejected.
 */
export const translateRow = (compiled: CompiledFormat, row: Row, receivedAt: string): Result.Result<ReadonlyArray<LoaderRecord>, Rejection> => {
  const { config } = compiled
  const spec = config.formatSpec
  if (compiled.fieldCount !== undefined && Array.isArray(row)) {
    const { exactly, count } = compiled.fieldCount
    if (exactly ? row.length !== count : row.length < count) {
      return reject(`expected ${exactly ? "" : "at least "}${count} columns, found ${row.length}`)
    }
  }
  if (spec.format === "jsonl" && (row === null || typeof row !== "object" || Array.isArray(row))) return reject("a JSON Lines line is an object")
  if (spec.format === "delimited" && !Array.isArray(row)) return reject("a delimited line is a list of fields")

  let idKind: IdKind
  if (typeof spec.idKind === "string") {
    idKind = spec.idKind
  } else {
    const cell = compiled.column(spec.idKind.column)
    const raw = text(cell.get(row))
    const kind = raw === undefined ? undefined : spec.idKind.values !== undefined ? (Object.hasOwn(spec.idKind.values, raw) ? spec.idKind.values[raw] : undefined) : raw.toLowerCase()
    if (kind === undefined || !isIdKind(kind)) return reject(`unknown id kind ${JSON.stringify(raw ?? "")}`, cell.name)
    idKind = kind
  }

  const userCell = compiled.column(spec.userId)
  const userId = normalizeUserId(idKind, text(userCell.get(row)) ?? "")
  if (Result.isFailure(userId)) return reject(userId.failure, userCell.name)

  let op: Operation = "add"
  if (typeof spec.op === "string") {
    op = spec.op
  } else if (spec.op !== undefined) {
    const cell = compiled.column(spec.op.column)
    const raw = text(cell.get(row))
    const found = raw === undefined ? spec.op.default : opOf(raw, spec.op.values)
    if (found === undefined) return reject(raw === undefined ? "no operation" : `unknown operation ${JSON.stringify(raw)}`, cell.name)
    op = found
  }

  let time = receivedAt
  if (spec.time !== undefined) {
    const cell = compiled.column(spec.time.column)
    const raw = text(cell.get(row))
    const parsed = raw === undefined ? undefined : parseTime(raw, spec.time.format)
    if (parsed === undefined) return reject(raw === undefined ? "no time" : `time ${JSON.stringify(raw)} is not ${spec.time.format}`, cell.name)
    time = parsed
  }

  let ttl = config.defaultTtlSeconds
  if (spec.ttl !== undefined) {
    const cell = compiled.column(spec.ttl.column)
    const value = cell.get(row)
    if (nested(value)) return reject(`TTL: a ${Array.isArray(value) ? "list" : "object"} where whole seconds from 1 to 31622400 are wanted`, cell.name)
    const raw = text(value)
    if (raw !== undefined) {
      ttl = parseTtl(raw)
      if (ttl === undefined) return reject(`TTL ${JSON.stringify(raw)} is not whole seconds from 1 to 31622400`, cell.name)
    }
  }

  const named = segmentsOf(compiled, row)
  if (Result.isFailure(named)) return Result.fail(named.failure)
  const segmentColumn = (code: string) =>
    spec.segments.kind === "columns" ? compiled.column(spec.segments.columns.find((c) => c.code === code)?.column ?? code).name : compiled.column(spec.segments.column).name
  const bySegment = new Map<string, LoaderRecord>()
  for (const n of named.success) {
    const segmentId = Object.hasOwn(config.segmentMap, n.code) ? config.segmentMap[n.code] : undefined
    if (segmentId === undefined) return reject(`unknown segment code ${JSON.stringify(n.code)}`, segmentColumn(n.code))
    const recordTtl = n.ttl ?? ttl
    bySegment.delete(segmentId)
    bySegment.set(segmentId, {
      idKind,
      userId: userId.success,
      segmentId,
      op: n.op ?? op,
      time,
      ...(recordTtl === undefined ? {} : { ttlSeconds: recordTtl })
    })
  }
  if (bySegment.size === 0) return reject("no segment on this line", compiled.column(spec.segments.kind === "columns" ? spec.segments.columns[0]!.column : spec.segments.column).name)
  return Result.succeed([...bySegment.values()])
}

/**
 * How far past the moment its input was received a record's time may lie (clocks disagree a little).
 * Records apply in the order of their time, so one dated years ahead would win over every later
 * correction of that membership and could never be removed: it is rejected instead.
 */
export const MAX_TIME_AHEAD_SECONDS = 86_400

/**
 * The earliest time a record may have, 0000-01-01T00:00:00Z. RFC 3339 allows `0000-01-01T00:00:00+23:59`,
 * which is in year −1, where the membership's expiry written back as RFC 3339 (`-000001-12-31T…`) is no
 * date-time: the profile's event did not encode, and its whole shard batch failed at every retry, so
 * the partner's job never moved again (found by an outside attack, stop 23). App events have the same bound.
 */
const earliestMillis = Date.parse("0000-01-01T00:00:00Z")

/** The records, unless one's time is before 0000-01-01T00:00:00Z or more than MAX_TIME_AHEAD_SECONDS after `receivedAt`. */
export const timesInBounds = (receivedAt: string) => {
  const latest = Date.parse(receivedAt) + MAX_TIME_AHEAD_SECONDS * 1_000
  return (records: ReadonlyArray<LoaderRecord>): Result.Result<ReadonlyArray<LoaderRecord>, Rejection> => {
    for (const record of records) {
      const time = Date.parse(record.time)
      if (time > latest) return reject(`time ${record.time} is more than ${MAX_TIME_AHEAD_SECONDS / 3_600} hours after the input was received (${receivedAt})`, "time")
      if (time < earliestMillis) return reject(`time ${record.time} is before 0000-01-01T00:00:00Z`, "time")
    }
    return Result.succeed(records)
  }
}

/** A loader-format JSON Lines value (the contract, strictly: unknown fields are rejected), its user id normalised. */
export const translateLoaderValue = (value: unknown): Result.Result<ReadonlyArray<LoaderRecord>, Rejection> => {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return reject("a loader record is a JSON object")
  const decoded = validate(LoaderRecord, value)
  if (Result.isFailure(decoded)) {
    const first = decoded.failure[0]
    const field = first?.path[0]
    return reject(first?.message ?? "not a loader record", field === undefined ? undefined : String(field))
  }
  const record = decoded.success
  const userId = normalizeUserId(record.idKind, record.userId)
  if (Result.isFailure(userId)) return reject(userId.failure, "userId")
  return Result.succeed([{ ...record, userId: userId.success }])
}
