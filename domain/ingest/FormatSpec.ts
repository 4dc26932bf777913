/**
 * A partner's input format, declared as data (issue 7, item 2): a new partner is configuration, not
 * code. Saved on the partner entity (domain/entities/partner.ts) and validated there by this schema,
 * whose JSON Schema the OpenAPI document publishes. infra/ingest/translateStream.ts reads files with
 * it; domain/ingest/translate.ts turns one parsed row into loader records.
 *
 * Columns are named by the header (`"user_id"`) when the file has one, by position from 1 when it
 * has none, and by field name in JSON Lines. Gzip is not configured: it is recognised by its magic
 * bytes. A record is one line: a quoted field may hold the delimiter, not a line break.
 */
import { Schema } from "effect"
import { StrictRecord } from "../strictRecord.ts"
import { Uint64String } from "../ids.ts"
import { IdKind, Operation, TtlSeconds } from "./LoaderRecord.ts"

export const ColumnName = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(200))
export const ColumnNumber = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1), Schema.isLessThanOrEqualTo(1000))

export const Column = Schema.Union([ColumnName, ColumnNumber]).annotate({
  identifier: "FormatColumn",
  description: "A header name (delimited with header) or JSON Lines field name; a position from 1 (delimited without header)"
})
export type Column = typeof Column.Type

const Char = Schema.String.check(Schema.isBetweenLength(1, 1))

/** A partner's own segment code, as its files write it. */
export const SegmentCode = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(200))

const IdKindFromColumn = Schema.Struct({
  column: Column,
  /** the column's values → id kinds; without it the column holds the kind's own name (`maid`, `cookie`, …) */
  values: Schema.optionalKey(Schema.Record(Schema.String, IdKind))
})

export const SegmentList = Schema.Struct({
  kind: Schema.Literal("list"),
  column: Column,
  /** between codes in the column (JSON Lines: also a JSON array of codes) */
  separator: Schema.String.check(Schema.isBetweenLength(1, 8))
}).annotate({ description: "One column holding the codes, e.g. `s1|s2|s3`" })

export const SegmentColumns = Schema.Struct({
  kind: Schema.Literal("columns"),
  /** one column per segment: a truthy value (1, true, yes, y, x) makes the user a member; a false or empty one says nothing */
  columns: Schema.Array(Schema.Struct({ column: Column, code: SegmentCode })).check(Schema.isMinLength(1), Schema.isMaxLength(1000))
}).annotate({ description: "One column per segment, its value saying membership" })

export const SegmentPairs = Schema.Struct({
  kind: Schema.Literal("pairs"),
  column: Column,
  /** between pairs (default `;`) */
  separator: Schema.optionalKey(Schema.String.check(Schema.isBetweenLength(1, 8))),
  /** between code and value (default `=`) */
  assign: Schema.optionalKey(Schema.String.check(Schema.isBetweenLength(1, 8))),
  /** what the value is: the membership's TTL in seconds, or its operation (mapped like `op.values`) */
  value: Schema.Literals(["ttl", "op"])
}).annotate({ description: "code=value pairs in one column, e.g. `s1=86400;s2=3600` (JSON Lines: also an object)" })

export const Segments = Schema.Union([SegmentList, SegmentColumns, SegmentPairs]).annotate({ identifier: "FormatSegments" })
export type Segments = typeof Segments.Type

export const OpFromColumn = Schema.Struct({
  column: Column,
  /** the column's values → add/remove (e.g. `{"A": "add", "D": "remove"}`); without it the column holds `add`/`remove` */
  values: Schema.optionalKey(Schema.Record(Schema.String, Operation)),
  /** for an empty value; without it an empty value is rejected */
  default: Schema.optionalKey(Operation)
})

export const TimeFormat = Schema.Literals(["rfc3339", "epoch_seconds", "epoch_millis"])
export type TimeFormat = typeof TimeFormat.Type

export const FormatMode = Schema.Literals(["incremental", "replace"]).annotate({
  description: "incremental: each line is a change. replace: the file is the full list; after it, the partner's memberships in the segments it names are removed from every user it does not list"
})

/** What every format says: the user, the segments, the operation, the time and TTL, the mode. */
const recordFields = {
  userId: Column,
  idKind: Schema.Union([IdKind, IdKindFromColumn]).annotate({ description: "the id kind of every line, or the column that gives it" }),
  segments: Segments,
  op: Schema.optionalKey(Schema.Union([Operation, OpFromColumn]).annotate({ description: "add/remove for every line (default add), or the column that gives it" })),
  time: Schema.optionalKey(Schema.Struct({ column: Column, format: TimeFormat }).annotate({
    description: "the event time's column; without it a record takes the time its file (or POST) was received"
  })),
  ttl: Schema.optionalKey(Schema.Struct({ column: Column }).annotate({
    description: "the membership TTL's column (whole seconds); an empty value falls back to the partner's defaultTtlSeconds"
  })),
  mode: Schema.optionalKey(FormatMode)
}

export const DelimitedFormat = Schema.Struct({
  format: Schema.Literal("delimited"),
  delimiter: Schema.optionalKey(Char.annotate({ description: "one character, default ','; a tab for TSV" })),
  quote: Schema.optionalKey(Char.annotate({ description: "one character, default '\"'; a quote inside a quoted field is doubled" })),
  header: Schema.Boolean.annotate({ description: "whether line 1 names the columns (then columns are named); otherwise they are numbered from 1" }),
  columnCount: Schema.optionalKey(ColumnNumber.annotate({
    description: "without a header: the number of columns every line must have (otherwise at least the highest one named)"
  })),
  ...recordFields
}).annotate({ identifier: "DelimitedFormat", description: "CSV, TSV or any one-character delimiter" })

export const JsonLinesFormat = Schema.Struct({
  format: Schema.Literal("jsonl"),
  ...recordFields
}).annotate({ identifier: "JsonLinesFormat", description: "One JSON object a line; columns are its top-level field names" })

type Spec = typeof DelimitedFormat.Type | typeof JsonLinesFormat.Type

/** Every column a spec names, with its path in the spec (for errors naming the field). */
export const columnsOf = (spec: Spec): ReadonlyArray<{ readonly path: ReadonlyArray<string | number>; readonly column: Column }> => {
  const out: Array<{ path: ReadonlyArray<string | number>; column: Column }> = [{ path: ["userId"], column: spec.userId }]
  if (typeof spec.idKind !== "string") out.push({ path: ["idKind", "column"], column: spec.idKind.column })
  if (spec.segments.kind === "columns") spec.segments.columns.forEach((c, i) => out.push({ path: ["segments", "columns", i, "column"], column: c.column }))
  else out.push({ path: ["segments", "column"], column: spec.segments.column })
  if (spec.op !== undefined && typeof spec.op !== "string") out.push({ path: ["op", "column"], column: spec.op.column })
  if (spec.time !== undefined) out.push({ path: ["time", "column"], column: spec.time.column })
  if (spec.ttl !== undefined) out.push({ path: ["ttl", "column"], column: spec.ttl.column })
  return out
}

/** Columns must be named the way the format names them; delimiter and quote must differ and not be line breaks. */
const consistent = (spec: Spec): ReadonlyArray<Schema.FilterIssue> => {
  const named = spec.format === "jsonl" || spec.header
  const issues: Array<Schema.FilterIssue> = columnsOf(spec).flatMap(({ path, column }) => {
    if (named && typeof column !== "string") {
      return [{ path, issue: spec.format === "jsonl" ? "JSON Lines columns are field names" : "with a header, columns are named by the header" }]
    }
    if (!named && typeof column !== "number") return [{ path, issue: "without a header, columns are numbered from 1" }]
    if (spec.format === "delimited" && spec.columnCount !== undefined && typeof column === "number" && column > spec.columnCount) {
      return [{ path, issue: `beyond columnCount (${spec.columnCount})` }]
    }
    return []
  })
  if (spec.format === "delimited") {
    const delimiter = spec.delimiter ?? ","
    const quote = spec.quote ?? "\""
    if (delimiter === quote) issues.push({ path: ["quote"], issue: "the quote must differ from the delimiter" })
    if (delimiter === "\n" || delimiter === "\r") issues.push({ path: ["delimiter"], issue: "a line break cannot be the delimiter" })
    if (quote === "\n" || quote === "\r") issues.push({ path: ["quote"], issue: "a line break cannot be the quote" })
    if (spec.header && spec.columnCount !== undefined) issues.push({ path: ["columnCount"], issue: "with a header, the header gives the column count" })
  }
  return issues
}

export const FormatSpec = Schema.Union([DelimitedFormat, JsonLinesFormat])
  .check(Schema.makeFilter(consistent))
  .annotate({ identifier: "FormatSpec", description: "A partner's input format (README: partner formats)" })
export type FormatSpec = typeof FormatSpec.Type

/**
 * Codes a segment map may hold. (Before, found by the outside attack of stop 17: the body limit let
 * 100,000 codes through, and each PUT of such a partner held the event loop 2–3 s, every door with it.)
 */
export const maxSegmentCodes = 10_000

/** The partner's segment codes → platform segment ids. Codes not in it are rejected per line, never guessed. */
export const SegmentMap = StrictRecord(SegmentCode, Uint64String).check(Schema.isMaxProperties(maxSegmentCodes)).annotate({
  identifier: "SegmentMap",
  description: `partner segment code → platform segment id (64-bit decimal string); at most ${maxSegmentCodes} codes`
})
export type SegmentMap = typeof SegmentMap.Type

/**
 * The platform segments a partner may feed, when it is told: a line naming another is rejected (read
 * again for each batch of a job: actors/ingest/runJob.ts), and its segment map may map codes to these
 * alone. Without it, any segment (as before stop 27): the platform has one segment id space, and several
 * partners may feed a segment.
 */
export const AllowedSegments = Schema.Array(Uint64String).check(Schema.isMaxLength(maxSegmentCodes)).annotate({
  identifier: "AllowedSegments",
  description: `platform segment ids (64-bit decimal strings) the partner may feed; at most ${maxSegmentCodes}; absent: any`
})

/** Why a line naming `segment` is rejected for a partner whose allowedSegments do not hold it. */
export const notAllowed = (segment: string) => `segment ${segment} is not among the partner's allowedSegments`

/** What translating a partner's file needs of the partner entity. */
export const PartnerConfig = Schema.Struct({
  formatSpec: FormatSpec,
  segmentMap: SegmentMap,
  defaultTtlSeconds: Schema.optionalKey(TtlSeconds)
})
export type PartnerConfig = typeof PartnerConfig.Type
