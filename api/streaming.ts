/**
 * The streaming route kind: request bodies read as a byte stream, and responses written from a
 * Stream as NDJSON or Server-Sent Events, both with backpressure on the socket.
 *
 * Uploads. A route declaring `body: upload({...})` gets its body as a `Stream<Uint8Array>` that reads
 * from the socket only when pulled: Node's socket buffer (and then TCP's window) fills while the
 * handler is busy, and the client slows down. Such a body never passes Fastify's body parsers nor the
 * JSON body limit; its own `maxBytes` applies (413 before reading when Content-Length says more;
 * 413 as soon as a chunked body goes past it). `Content-Encoding: gzip` is decoded here, so the
 * handler always sees the representation itself and the limit counts decoded bytes; a body inflating
 * to more than 200 times what was sent (domain/gzipBomb.ts) is refused as a bomb (413); a file that is
 * itself compressed is sent as `Content-Type: application/gzip` and reaches the handler as those bytes. Other content encodings answer 415.
 *
 * An upload may last as long as it keeps coming (a multi-GB file over an ordinary link): it is bounded
 * by its pace, not by a total time (api/app.ts keeps the whole-request deadline for other routes).
 * Only the time the handler waits for the client counts: while the handler is busy and the socket
 * fills, the client is not slow. The body fails with RequestTimeout (408) when no byte came for
 * `idleMillis` of waiting, or when, past its first `idleMillis` of waiting, fewer than
 * `minBytesPerSecond` bytes a second as sent (compressed, for a gzip transfer) came over the last
 * `idleMillis` of waiting: a sliding window, so a fast start banks no credit for a trickle after it.
 *
 * Streamed responses. A handler answers `{ status, stream }`; each item is encoded with the route's
 * item schema and written as one NDJSON line (`application/x-ndjson`), or, when the client's Accept
 * asks for `text/event-stream`, as one SSE event (`id:` from the route, so `Last-Event-ID` can
 * resume; a comment every 15 s keeps proxies from closing an idle stream). The next items are pulled
 * only once the socket took the previous ones, so a slow client holds the producer instead of making
 * the server buffer. When the client goes away the producing stream is interrupted and its
 * finalizers run; when the server closes, streams end cleanly, so a graceful stop is not held up by
 * clients following a stream that never ends. A failure after the headers went out cannot change the status any more: SSE sends
 * a last `event: problem` with the problem+json; NDJSON aborts the response, so the client sees a
 * truncated body rather than a clean end.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { pipeline } from "node:stream"
import { createGunzip } from "node:zlib"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Array as Arr, Cause, Duration, Effect, Exit, Option, Schema, Stream } from "effect"
import { inflatesTooMuch, maxInflation } from "../domain/gzipBomb.ts"
import { defaultUploadPace, paced, type UploadPace } from "../domain/uploadPace.ts"
import { PayloadTooLarge, RequestBodyFailed, RequestTimeout, toProblem, UnsupportedMediaType } from "./problems.ts"

export { defaultUploadPace, type UploadPace }

/** A route's streamed request body: its media types, its size limit, what it is. */
export interface Upload {
  readonly _tag: "Upload"
  /** accepted media types (without parameters), e.g. `text/csv`, `application/gzip` */
  readonly contentTypes: ReadonlyArray<string>
  /** decoded bytes at most; 413 beyond */
  readonly maxBytes: number
  readonly description: string
}

export const upload = (options: Omit<Upload, "_tag">): Upload => ({ _tag: "Upload", ...options })

export const isUpload = (u: unknown): u is Upload => typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "Upload"

/** What an upload route's handler reads. It can be run once: it is the socket. */
export type BodyStream = Stream.Stream<Uint8Array, PayloadTooLarge | RequestBodyFailed | RequestTimeout | UnsupportedMediaType>

const mediaType = (header: string | undefined) => (header ?? "").split(";")[0]!.trim().toLowerCase()

const tooLarge = (limit: number) => new PayloadTooLarge({ detail: `this route takes at most ${limit} bytes`, limitBytes: limit })

/**
 * Checks an upload's headers (media type, encoding, declared length) and opens its body as a
 * stream. Nothing is read until the stream is pulled.
 */
export const openUpload = (
  request: IncomingMessage,
  spec: Upload,
  pace: UploadPace = defaultUploadPace
): Effect.Effect<BodyStream, PayloadTooLarge | UnsupportedMediaType> =>
  Effect.suspend((): Effect.Effect<BodyStream, PayloadTooLarge | UnsupportedMediaType> => {
    const type = mediaType(request.headers["content-type"])
    if (!spec.contentTypes.includes(type)) {
      return Effect.fail(new UnsupportedMediaType({ detail: `send Content-Type ${spec.contentTypes.join(" or ")}; got ${type || "none"}` }))
    }
    const encoding = (request.headers["content-encoding"] ?? "identity").trim().toLowerCase()
    if (encoding !== "identity" && encoding !== "gzip") {
      return Effect.fail(new UnsupportedMediaType({ detail: `Content-Encoding ${encoding} is not supported; send gzip or identity` }))
    }
    const declared = Number(request.headers["content-length"] ?? Number.NaN)
    // Identity bodies are checked before reading; a gzip body's decoded size is only known by reading.
    if (encoding === "identity" && declared > spec.maxBytes) return Effect.fail(tooLarge(spec.maxBytes))
    const source = encoding === "gzip" ? pipeline(request, createGunzip(), () => {}) : request
    const counted = { bytes: 0, sent: 0 }
    // the first bytes a gzip body inflates to: gzip again is refused (below)
    const head: Array<number> = []
    // A gzip transfer's pace counts its compressed bytes: the request already flows into gunzip, so a
    // second `data` listener only counts. Identity bodies are counted as they are read.
    if (encoding === "gzip") request.on("data", (chunk: Buffer) => void (counted.sent += chunk.byteLength))
    const read = NodeStream.fromReadable<Uint8Array, RequestBodyFailed>({
      evaluate: () => source,
      onError: (cause) => new RequestBodyFailed({ detail: `the body could not be read: ${String((cause as Error)?.message ?? cause)}` }),
      // The request stays open when the handler stops early: the answer (413 or not) still has to go out.
      closeOnDone: false
    })
    const body: BodyStream = paced(read, pace, () => encoding === "gzip" ? counted.sent : counted.bytes, (detail) => new RequestTimeout({ detail })).pipe(Stream.mapEffect((chunk): Effect.Effect<Uint8Array, PayloadTooLarge | UnsupportedMediaType> => {
      counted.bytes += chunk.byteLength
      if (counted.bytes > spec.maxBytes) return Effect.fail(tooLarge(spec.maxBytes))
      // A gzip file sent with Content-Encoding: gzip is compressed twice, and each layer could inflate 200
      // times: the door bounds the outer one, a translator the inner one against the stored bytes, so a
      // body of 667 bytes made 14 million lines (stop 31's outside attack). One layer is enough.
      if (encoding === "gzip" && head.length < 2) {
        for (const byte of chunk.subarray(0, 2 - head.length)) head.push(byte)
        if (head[0] === 0x1f && head[1] === 0x8b) {
          return Effect.fail(new UnsupportedMediaType({ detail: "the body is gzip inside Content-Encoding: gzip (compressed twice): send the gzip file as it is, or its content with Content-Encoding: gzip" }))
        }
      }
      return encoding === "gzip" && inflatesTooMuch(counted.bytes, counted.sent)
        ? Effect.fail(new PayloadTooLarge({ detail: `the gzip body inflates to more than ${maxInflation} times its size: refused as a gzip bomb`, limitBytes: spec.maxBytes }))
        : Effect.succeed(chunk)
    }))
    return Effect.succeed(body)
  })

/**
 * `read` of a whole body, failing with RequestTimeout (408) unless it ends within `within` (named by its
 * setting): for bodies read whole before anything is done with them, which a sender keeping one open a
 * byte at a time would otherwise hold (with what it took of a byte budget) for as long as it liked.
 */
export const readWithin = <A, E, R>(read: Effect.Effect<A, E, R>, within: Duration.Duration, setting: string, what: string) =>
  read.pipe(Effect.timeoutOrElse({
    duration: within,
    orElse: () => Effect.fail(new RequestTimeout({ detail: `${what} must arrive whole within ${Duration.format(within)} (${setting})` }))
  }))

/** A streamed response: its item schema and, for SSE, each item's event id and name. */
export interface Streamed {
  readonly item: Schema.Top
  /** `id:` of an item's SSE event, e.g. its position: what `Last-Event-ID` sends back */
  readonly eventId?: (item: never) => string
  /** `event:` of an item's SSE event (default: none, i.e. "message") */
  readonly eventName?: (item: never) => string
}

export const ndjson = "application/x-ndjson"
export const eventStream = "text/event-stream"

/** SSE when the client's Accept names text/event-stream; NDJSON otherwise. */
export const negotiate = (accept: string | undefined): typeof ndjson | typeof eventStream =>
  (accept ?? "").toLowerCase().includes(eventStream) ? eventStream : ndjson

const sseEvent = (data: string, id: string | undefined, name: string | undefined) =>
  `${name === undefined ? "" : `event: ${name}\n`}${id === undefined ? "" : `id: ${id}\n`}data: ${data}\n\n`

/** Completes when the client has gone (the response closed before it finished). */
const clientGone = (response: ServerResponse) =>
  Effect.callback<void>((resume) => {
    const onClose = () => {
      if (!response.writableFinished) resume(Effect.void)
    }
    if (response.destroyed) return resume(Effect.void)
    response.on("close", onClose)
    return Effect.sync(() => response.off("close", onClose))
  })

/** Writes text, waiting for the socket to drain when its buffer is full (backpressure). */
const write = (response: ServerResponse, text: string) =>
  Effect.callback<void>((resume) => {
    if (response.write(text)) return resume(Effect.void)
    const onDrain = () => resume(Effect.void)
    response.once("drain", onDrain)
    return Effect.sync(() => response.off("drain", onDrain))
  })

/** Characters of a streamed answer written at once, at most (past one line longer than that). */
const chunkChars = 64 * 1024

/** Lines joined into chunks of about `chunkChars` (a longer line is a chunk of its own). */
const chunksOf = ([first, ...rest]: Arr.NonEmptyReadonlyArray<string>): Arr.NonEmptyArray<string> => {
  const chunks: Arr.NonEmptyArray<string> = [first]
  for (const text of rest) {
    const last = chunks.length - 1
    if (chunks[last]!.length + text.length > chunkChars) chunks.push(text)
    else chunks[last] += text
  }
  return chunks
}

/**
 * Answers `status` with `stream`, encoded by `spec`, in the format `format`, until the stream ends,
 * fails or the client goes away. Never fails: once headers are out, errors are reported in-band.
 */
export const sendStream = <E, R, RK>(options: {
  readonly response: ServerResponse
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly format: typeof ndjson | typeof eventStream
  readonly spec: Streamed
  readonly stream: Stream.Stream<unknown, E, R>
  readonly instance: string
  /** completes when the server is closing: the answer then ends cleanly (clients resume from the last id) */
  readonly closing: Effect.Effect<void>
  /** fails when the caller's key is no longer good (revoked, or the bootstrap key disabled): the answer ends with that problem */
  readonly revoked: Effect.Effect<never, { readonly _tag: string }, RK>
  readonly onError: (cause: Cause.Cause<E | { readonly _tag: string }>) => Effect.Effect<void>
}): Effect.Effect<void, never, R | RK> =>
  Effect.gen(function*() {
    const { response, spec, format } = options
    const encode = Schema.encodeUnknownSync(spec.item as Schema.Codec<unknown>)
    const sse = format === eventStream
    const eventId = spec.eventId as ((item: unknown) => string) | undefined
    const eventName = spec.eventName as ((item: unknown) => string) | undefined
    const line = (item: unknown) => {
      const json = JSON.stringify(encode(item))
      return sse ? sseEvent(json, eventId?.(item), eventName?.(item)) : `${json}\n`
    }
    response.writeHead(options.status, { ...options.headers, "content-type": format, "cache-control": "no-cache", "x-accel-buffering": "no" })
    // Headers go out now: a client following a quiet stream learns at once that it is connected.
    response.flushHeaders()
    // Written in chunks of about `chunkChars`, each waiting for the client to take the one before: a page
    // joined whole was one write of up to 64 MB, buffered for a slow client (stop 28's outside attack).
    const text = options.stream.pipe(Stream.mapArray((items) => chunksOf(Arr.map(items, line))))
    const withHeartbeat = sse
      ? Stream.merge(text, Stream.map(Stream.tick("15 seconds"), () => ": keep-alive\n\n"), { haltStrategy: "left" })
      : text
    const exit = yield* withHeartbeat.pipe(
      Stream.runForEach((chunk) => write(response, chunk)),
      Effect.raceFirst(clientGone(response)),
      Effect.raceFirst(options.closing),
      Effect.raceFirst(options.revoked),
      Effect.exit
    )
    if (Exit.isSuccess(exit)) {
      if (!response.destroyed) response.end()
      return
    }
    yield* options.onError(exit.cause)
    if (sse && !response.destroyed) {
      const failure = Option.getOrElse(
        Cause.findErrorOption(exit.cause) as Option.Option<{ readonly _tag: string } & Record<string, unknown>>,
        () => ({ _tag: "Internal", detail: "internal error" })
      )
      const { problem } = toProblem(failure, options.instance)
      response.end(sseEvent(JSON.stringify(problem), undefined, "problem"))
    } else if (!response.destroyed) {
      // Close after what was written so far, without the last chunk: the client sees a cut-off body.
      response.socket?.end()
    }
  })
