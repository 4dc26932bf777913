/**
 * An upload's bytes → translated lines, streamed: the file is never held in memory (multi-GB inputs),
 * gzip is recognised by its magic bytes and inflated on the way, and each line keeps its number
 * (from 1; a header is line 1 and yields no record). The TranslatorActor reads a job through it.
 *
 * A record is one line (`\n` or `\r\n`): a quoted field may hold the delimiter but not a line break,
 * so one bad quote costs one line, not the rest of the file, and a file can be cut at line breaks.
 * Bad input is reported, never a crash: a line over 64 KiB, not UTF-8, malformed, or naming an
 * unknown segment is `Rejected` and the next line is read; an empty file, a header that does not
 * match the spec, or a truncated/corrupt gzip ends the stream with `InputBroken` at its line.
 */
import { Buffer, isUtf8 } from "node:buffer"
import { createGunzip } from "node:zlib"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Parser } from "csv-parse"
import { Effect, Result, Schema, Sink, Stream } from "effect"
import { inflatesTooMuch, maxInflation } from "../../domain/gzipBomb.ts"
import type { PartnerConfig } from "../../domain/ingest/FormatSpec.ts"
import type { LineError } from "../../domain/ingest/Job.ts"
import type { LoaderRecord } from "../../domain/ingest/LoaderRecord.ts"
import { compileFormat, type CompiledFormat, hasHeader, timesInBounds, type Row, translateLoaderValue, translateRow } from "../../domain/ingest/translate.ts"

/** Lines longer than this (in bytes, without the line break) are rejected (issue 7). */
export const MAX_LINE_BYTES = 64 * 1024

export type Translation =
  | { readonly format: "loader" }
  | { readonly format: "partner"; readonly partner: PartnerConfig }

export type TranslatedLine =
  | { readonly _tag: "Records"; readonly line: number; readonly offset: number; readonly records: ReadonlyArray<LoaderRecord> }
  | { readonly _tag: "Rejected"; readonly line: number; readonly offset: number; readonly error: LineError }

/** The input cannot be read on from `line` (0: before any line): the job fails there, keeping what came before. */
export class InputBroken extends Schema.TaggedError<InputBroken>()("InputBroken", { line: Schema.Int, reason: Schema.String }) {}

type LineResult = Result.Result<ReadonlyArray<LoaderRecord>, Omit<LineError, "line">>

/** a line break, then as many more as csv-parse looks ahead (3 bytes, for multi-byte trim characters) */
const NEWLINES = Buffer.from("\n\n\n\n")

const csvProblems: Record<string, string> = {
  CSV_INVALID_CLOSING_QUOTE: "malformed quoting: a closing quote is followed by text",
  INVALID_OPENING_QUOTE: "malformed quoting: a quote inside an unquoted field",
  CSV_QUOTE_NOT_CLOSED: "malformed quoting: a quote is not closed on this line"
}

/** The synchronous core of csv-parse's `Parser` (the same object its stream and sync APIs drive). */
interface CsvApi {
  readonly parse: (buf: Buffer, end: boolean, push: (record: Array<string>) => void, close: () => void) => (Error & { readonly code?: string; readonly column?: unknown }) | undefined
}

/**
 * One delimited line → its fields, with csv-parse. One parser serves every line: each line is
 * followed by four line breaks, so the first ends the record at once (csv-parse looks 3 bytes
 * ahead) and the others, left pending, are empty lines the next feed skips. A line that leaves a quote open,
 * or fails, gets a fresh parser.
 */
const csvLines = (delimiter: string, quote: string) => {
  const options = { delimiter, quote, escape: quote, record_delimiter: "\n", relax_column_count: true, skip_empty_lines: true, bom: false }
  const make = () => {
    const api = (new Parser(options) as unknown as { readonly api?: CsvApi }).api
    // csv-parse 5–7 keep it there; a version that does not is caught by the tests, and here at once
    if (typeof api?.parse !== "function") throw new Error("csv-parse's Parser has no synchronous api.parse")
    return api
  }
  let api = make()
  return (bytes: Uint8Array): Result.Result<ReadonlyArray<string>, Omit<LineError, "line">> => {
    let fields: Array<string> | undefined
    const push = (record: Array<string>) => { fields = record }
    // two feeds rather than one concatenation: the line is not copied (csv-parse keeps only its last bytes pending)
    const error = api.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), false, push, noop) ?? api.parse(NEWLINES, false, push, noop)
    if (error !== undefined || fields === undefined) {
      api = make()
      const reason = error === undefined ? csvProblems.CSV_QUOTE_NOT_CLOSED! : csvProblems[error.code ?? ""] ?? `malformed line: ${error.message.replace(/ at line \d+/, "")}`
      const column = error !== undefined && typeof error.column === "number" ? error.column + 1 : undefined
      return Result.fail(column === undefined ? { reason } : { column, reason })
    }
    return Result.succeed(fields)
  }
}

const noop = () => {}

const utf8 = new TextDecoder("utf-8")

const jsonValue = (bytes: Uint8Array): Result.Result<unknown, Omit<LineError, "line">> => {
  try {
    return Result.succeed(JSON.parse(utf8.decode(bytes)))
  } catch (e) {
    return Result.fail({ reason: `not JSON: ${(e as Error).message}` })
  }
}

/**
 * Translates one line at a time: the pure core the stream uses, and what a worker would run on a
 * slice of a file (given the header line when the spec has one).
 */
export interface LineTranslator {
  /** whether line 1 is a header to `readHeader` before any line */
  readonly needsHeader: boolean
  /** Reads the header (line 1); fails when it does not match the spec. */
  readonly readHeader: (bytes: Uint8Array) => Result.Result<void, string>
  /** One line's bytes (without its line break, at most MAX_LINE_BYTES) → its records, or why not. */
  readonly translateLine: (bytes: Uint8Array) => LineResult
}

export const makeLineTranslator = (translation: Translation, receivedAt: string): LineTranslator => {
  const inBounds = timesInBounds(receivedAt)
  if (translation.format === "loader") {
    return {
      needsHeader: false,
      readHeader: () => Result.succeed(undefined),
      translateLine: (bytes) => {
        if (!isUtf8(bytes)) return Result.fail({ reason: "not UTF-8" })
        return Result.flatMap(Result.flatMap(jsonValue(bytes), translateLoaderValue), inBounds)
      }
    }
  }
  const config = translation.partner
  const spec = config.formatSpec
  const parseFields = spec.format === "delimited" ? csvLines(spec.delimiter ?? ",", spec.quote ?? "\"") : undefined
  const parse = (bytes: Uint8Array): Result.Result<Row, Omit<LineError, "line">> =>
    parseFields !== undefined ? parseFields(bytes) : Result.flatMap(jsonValue(bytes), (value) =>
      value !== null && typeof value === "object" && !Array.isArray(value)
        ? Result.succeed(value as Row)
        : Result.fail({ reason: "a JSON Lines line is an object" }))
  let compiled: Result.Result<CompiledFormat, string> = hasHeader(spec) ? Result.fail("the header was not read") : compileFormat(config)
  return {
    needsHeader: hasHeader(spec),
    readHeader: (bytes) => {
      if (!isUtf8(bytes)) return Result.fail("the header (line 1) is not UTF-8")
      const fields = parse(bytes)
      if (Result.isFailure(fields) || !Array.isArray(fields.success)) return Result.fail("the header (line 1) cannot be parsed")
      compiled = compileFormat(config, fields.success as ReadonlyArray<string>)
      return Result.map(compiled, () => undefined)
    },
    translateLine: (bytes) => {
      if (!isUtf8(bytes)) return Result.fail({ reason: "not UTF-8" })
      if (Result.isFailure(compiled)) return Result.fail({ reason: compiled.failure })
      const format = compiled.success
      return Result.flatMap(Result.flatMap(parse(bytes), (row) => translateRow(format, row, receivedAt)), inBounds)
    }
  }
}

/** The input as it failed inside gunzip (or inflated past its bound), before its line is known. */
class GzipBroken extends Schema.TaggedError<GzipBroken>()("GzipBroken", { reason: Schema.String }) {}

const isGzip = (head: Uint8Array) => head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b

/** The first chunks of the input (at least 2 bytes, unless it is shorter) and the rest of it. */
const firstBytes = Sink.fold(
  () => [] as Array<Uint8Array>,
  (chunks) => chunks.reduce((n, c) => n + c.length, 0) < 2,
  (chunks, chunk: Uint8Array) => Effect.succeed([...chunks, chunk])
)

/**
 * The input inflated when it is gzip, as it is otherwise. `consumed` counts the stored bytes read
 * through gunzip (which reads ahead a little); for plain input the line splitter counts exactly.
 */
const inflated = <E>(input: Stream.Stream<Uint8Array, E>, consumed: { gzip: boolean; bytes: number }): Stream.Stream<Uint8Array, E | GzipBroken> =>
  Stream.unwrap(Effect.map(Stream.peel(input, firstBytes), ([head, rest]) => {
    const whole = Stream.concat(Stream.fromIterable(head), rest)
    if (!isGzip(Buffer.concat(head))) return whole
    consumed.gzip = true
    const counted = Stream.map(whole, (chunk) => {
      consumed.bytes += chunk.length
      return chunk
    })
    let out = 0
    return NodeStream.pipeThroughDuplex(counted, {
      evaluate: () => createGunzip(),
      onError: (e) => new GzipBroken({ reason: `the gzip input is truncated or corrupt (${(e as Error).message ?? String(e)})` })
    }).pipe(Stream.mapEffect((chunk) => {
      out += chunk.length
      return inflatesTooMuch(out, consumed.bytes)
        ? Effect.fail(new GzipBroken({ reason: `the gzip input inflates to more than ${maxInflation} times its size: refused as a gzip bomb` }))
        : Effect.succeed(chunk)
    }))
  }))

const UTF8_BOM = [0xef, 0xbb, 0xbf]

/**
 * The upload's bytes → one TranslatedLine per non-empty line after `fromLine`, in order; `offset` is
 * how many bytes of the input (as stored, compressed or not) were consumed by then.
 */
export const translateStream = <E>(
  translation: Translation,
  input: Stream.Stream<Uint8Array, E>,
  options: { readonly receivedAt: string; readonly fromLine?: number }
): Stream.Stream<TranslatedLine, E | InputBroken> =>
  Stream.suspend(() => {
    const translator = makeLineTranslator(translation, options.receivedAt)
    const fromLine = options.fromLine ?? 0
    // One run's state: how much input was consumed, and the line being assembled.
    const input$ = { gzip: false, bytes: 0 }
    const at = { consumed: 0, line: 0, parts: [] as Array<Uint8Array>, length: 0, overlong: false, content: false, header: translator.needsHeader }

    /** A complete line → what it yields, or where the input broke. */
    const finish = (out: Array<TranslatedLine>): InputBroken | undefined => {
      const line = ++at.line
      const overlong = at.overlong
      let bytes = at.parts.length === 1 ? at.parts[0]! : Buffer.concat(at.parts)
      at.parts = []
      at.length = 0
      at.overlong = false
      if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1)
      if (line === 1 && UTF8_BOM.every((b, i) => bytes[i] === b)) bytes = bytes.subarray(3)
      if (bytes.length === 0 && !overlong) return at.header ? new InputBroken({ line, reason: "line 1 must be the header the spec declares, and is empty" }) : undefined
      at.content = true
      if (at.header) {
        at.header = false
        if (overlong) return new InputBroken({ line, reason: `the header (line 1) is longer than ${MAX_LINE_BYTES} bytes` })
        const read = translator.readHeader(bytes)
        return Result.isFailure(read) ? new InputBroken({ line, reason: read.failure }) : undefined
      }
      if (line <= fromLine) return undefined
      if (overlong) {
        out.push({ _tag: "Rejected", line, offset: at.consumed, error: { line, reason: `line longer than ${MAX_LINE_BYTES} bytes` } })
        return undefined
      }
      const result = translator.translateLine(bytes)
      out.push(Result.isSuccess(result)
        ? { _tag: "Records", line, offset: at.consumed, records: result.success }
        : { _tag: "Rejected", line, offset: at.consumed, error: { line, ...result.failure } })
      return undefined
    }

    const append = (piece: Uint8Array) => {
      if (at.overlong || piece.length === 0) return
      if (at.length + piece.length > MAX_LINE_BYTES) {
        at.overlong = true
        at.parts = []
        at.length = 0
        return
      }
      at.parts.push(piece)
      at.length += piece.length
    }

    const emit = (out: ReadonlyArray<TranslatedLine>, broken: InputBroken | undefined): Stream.Stream<TranslatedLine, InputBroken> =>
      broken === undefined ? Stream.fromIterable(out) : Stream.concat(Stream.fromIterable(out), Stream.fail(broken))

    const chunkLines = (chunk: Uint8Array) => {
      const out: Array<TranslatedLine> = []
      const before = input$.bytes
      if (!input$.gzip) input$.bytes += chunk.length
      let start = 0
      while (start <= chunk.length) {
        const nl = chunk.indexOf(0x0a, start)
        if (nl < 0) {
          append(chunk.subarray(start))
          break
        }
        // a blank line between others: counted, nothing more (a file of line breaks costs no allocation a line)
        if (nl === start && at.length === 0 && !at.overlong && !at.header && at.line > 0) {
          at.line++
          start = nl + 1
          continue
        }
        append(chunk.subarray(start, nl))
        at.consumed = input$.gzip ? input$.bytes : before + nl + 1
        const broken = finish(out)
        if (broken !== undefined) return emit(out, broken)
        start = nl + 1
      }
      return emit(out, undefined)
    }

    const end = Stream.suspend(() => {
      const out: Array<TranslatedLine> = []
      at.consumed = input$.bytes
      const broken = at.length > 0 || at.overlong ? finish(out) : undefined
      if (broken === undefined && !at.content) return Stream.fail(new InputBroken({ line: 0, reason: "the file is empty" }))
      return emit(out, broken)
    })

    return inflated(input, input$).pipe(
      Stream.flatMap(chunkLines),
      Stream.catchIf(
        (e): e is GzipBroken => e instanceof GzipBroken,
        (e) => Stream.fail(new InputBroken({ line: at.line + 1, reason: e.reason }))
      ),
      (lines) => Stream.concat(lines, end)
    )
  })
