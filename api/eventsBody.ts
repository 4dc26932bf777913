/**
 * Reading a batch of SDK events from a request body (POST /v1/apps/{app}/events): a JSON array
 * (`application/json`) or JSON Lines (`application/x-ndjson`), gzip or not (api/streaming.ts inflates
 * and bounds the inflated bytes). Limits are explicit: the body's bytes (the upload's), the events of
 * one batch and one line's length (413 beyond), and how deeply a JSON text nests (MAX_JSON_DEPTH,
 * checked before it is parsed: api/jsonDepth.ts). Each item is kept as it came, or as the reason it
 * is not JSON, so a bad line is rejected by its index and the rest of the batch kept. The body is
 * UTF-8: bytes that are not refuse it (400), rather than turning into U+FFFD, which would make two
 * device ids one.
 */
import { Effect, Stream } from "effect"
import type { RawEvent } from "../domain/events/eventChecks.ts"
import { nestedTooDeep, tooDeep } from "./jsonDepth.ts"
import { InvalidRequest, PayloadTooLarge } from "./problems.ts"
import { ndjson } from "./streaming.ts"

export interface EventsBodyLimits {
  /** events in one batch at most (EVENTS_MAX_PER_BATCH) */
  readonly maxEvents: number
  /** characters of one JSON Lines line at most (EVENTS_MAX_LINE_BYTES) */
  readonly maxLineBytes: number
  /** levels a JSON text (the array, or a line) nests at most (MAX_JSON_DEPTH) */
  readonly maxJsonDepth: number
}


const tooManyEvents = (limits: EventsBodyLimits) =>
  new PayloadTooLarge({ detail: `a batch takes at most ${limits.maxEvents} events (EVENTS_MAX_PER_BATCH); send the rest in another`, limitBytes: limits.maxEvents })

const invalid = (message: string) => new InvalidRequest({ issues: [{ in: "body", path: [], message }] })

/** The body as text; bytes that are not UTF-8 fail it. */
const decodeUtf8 = <E>(body: Stream.Stream<Uint8Array, E>) =>
  Stream.suspend(() => {
    const decoder = new TextDecoder("utf-8", { fatal: true })
    const decode = (bytes?: Uint8Array) =>
      Effect.try({ try: () => decoder.decode(bytes, { stream: bytes !== undefined }), catch: () => invalid("the body is not valid UTF-8") })
    return body.pipe(Stream.mapEffect((bytes) => decode(bytes)), Stream.concat(Stream.fromEffect(decode())))
  })

const parseLine = (line: string, maxJsonDepth: number): RawEvent => {
  const deep = tooDeep(line, maxJsonDepth)
  if (deep !== undefined) return { _tag: "NotJson", reason: `${deep[0] ?? "event"}: nested deeper than ${maxJsonDepth} levels` }
  try {
    return { _tag: "Json", value: JSON.parse(line) }
  } catch {
    return { _tag: "NotJson", reason: "event: not valid JSON" }
  }
}

/**
 * JSON Lines, read as they arrive: blank lines are skipped, but count towards the batch's limit (a
 * line each); an item's index counts the others. (Before, found by an outside attack: 7.8 KB of gzip
 * inflating to 8 million blank lines cost 2.1 s of the event loop before its 400.)
 */
const readLines = <E>(body: Stream.Stream<Uint8Array, E>, limits: EventsBodyLimits) =>
  Effect.suspend(() => {
    const items: Array<RawEvent> = []
    let lines = 0
    return decodeUtf8(body).pipe(
      Stream.splitLines,
      Stream.runForEach((line) => {
        if (line.length > limits.maxLineBytes) {
          return Effect.fail(new PayloadTooLarge({ detail: `a line takes at most ${limits.maxLineBytes} characters (EVENTS_MAX_LINE_BYTES)`, limitBytes: limits.maxLineBytes }))
        }
        if (++lines > limits.maxEvents) {
          return Effect.fail(new PayloadTooLarge({ detail: `a batch takes at most ${limits.maxEvents} lines, blank ones too (EVENTS_MAX_PER_BATCH); send the rest in another`, limitBytes: limits.maxEvents }))
        }
        if (line.trim() === "") return Effect.void
        items.push(parseLine(line, limits.maxJsonDepth))
        return Effect.void
      }),
      Effect.as(items)
    )
  })

/** A JSON array, read whole (the upload's byte limit bounds it), then its items. */
const readArray = <E>(body: Stream.Stream<Uint8Array, E>, limits: EventsBodyLimits) =>
  Effect.gen(function*() {
    const text = yield* Stream.mkString(decodeUtf8(body))
    const deep = tooDeep(text, limits.maxJsonDepth)
    if (deep !== undefined) return yield* nestedTooDeep(deep, limits.maxJsonDepth)
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      return yield* invalid("the body is not valid JSON: send a JSON array of events, or JSON Lines as application/x-ndjson")
    }
    if (!Array.isArray(value)) return yield* invalid("expected a JSON array of events")
    if (value.length > limits.maxEvents) return yield* tooManyEvents(limits)
    return value.map((item): RawEvent => ({ _tag: "Json", value: item }))
  })

/** The batch's items, in order; an empty batch is refused (400). */
/** `body`: an upload (api/streaming.ts's BodyStream), or one metered further (its errors pass through). */
export const readEventsBody = <E>(body: Stream.Stream<Uint8Array, E>, contentType: string | undefined, limits: EventsBodyLimits) =>
  Effect.gen(function*() {
    const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase()
    const items = type === ndjson ? yield* readLines(body, limits) : yield* readArray(body, limits)
    if (items.length === 0) return yield* invalid("the batch holds no event")
    return items
  })
