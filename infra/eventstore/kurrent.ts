/**
 * The event store on an EventStoreDB / KurrentDB cluster, through `@kurrent/kurrentdb-client`.
 *
 * Our `position` is the event's commit position in `$all`. Events appended over gRPC are implicitly
 * committed, so each has its own log position and commit == prepare (the server's AllReader reports
 * `CommitEventRecord(event, event.LogPosition)`); `{ commit: n, prepare: n }` therefore addresses it exactly.
 */
import {
  ANY,
  BACKWARDS,
  END,
  FORWARDS,
  KurrentDBClient,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  StreamNotFoundError,
  WrongExpectedVersionError,
  excludeSystemEvents,
  jsonEvent
} from "@kurrent/kurrentdb-client"
import type {
  AllStreamResolvedEvent,
  AppendStreamState,
  JSONType,
  Position,
  ResolvedEvent
} from "@kurrent/kurrentdb-client"
import { Effect, Layer, Stream } from "effect"
import {
  EventStore,
  EventStoreError,
  WrongExpectedRevision
} from "../../domain/EventStore.ts"
import type {
  EventData,
  ExpectedRevision,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  SubscribeToAllOptions
} from "../../domain/EventStore.ts"

export interface KurrentOptions {
  /** e.g. `esdb://localhost:2113?tls=false` or `kurrentdb+discover://…` */
  readonly connectionString: string
}

const failWith = (operation: string) => (cause: unknown) => new EventStoreError({ operation, cause })

const streamState = (expected: ExpectedRevision): AppendStreamState =>
  expected === "any" ? ANY : expected === "no_stream" ? NO_STREAM : expected === "stream_exists" ? STREAM_EXISTS : BigInt(expected)

const positionOf = (n: number): Position => ({ commit: BigInt(n), prepare: BigInt(n) })

const utf8 = new TextEncoder()
const text = new TextDecoder()

// Metadata is sent as the bytes of its JSON: the client drops falsy JSON metadata (null, 0, false, "")
// and would otherwise read such events back with no metadata at all.
const toEventData = (event: EventData) =>
  jsonEvent({
    id: event.eventId,
    type: event.type,
    data: event.data as JSONType,
    metadata: utf8.encode(JSON.stringify(event.metadata))
  })

/** The client parses JSON it can; anything else (binary or malformed) arrives as bytes or text. */
const asJson = (value: unknown): RecordedEvent["data"] => {
  if (value === undefined) return null
  if (!(value instanceof Uint8Array)) return value as RecordedEvent["data"]
  const decoded = text.decode(value)
  try {
    return JSON.parse(decoded)
  } catch {
    return decoded
  }
}

const isSystem = (stream: string, type: string) => stream.startsWith("$") || type.startsWith("$")

const toRecorded = (resolved: ResolvedEvent | AllStreamResolvedEvent): RecordedEvent | undefined => {
  const event = resolved.event
  if (event === undefined || isSystem(event.streamId, event.type)) return undefined
  const commit = event.position?.commit ?? resolved.commitPosition
  return {
    eventId: event.id,
    stream: event.streamId,
    type: event.type,
    revision: Number(event.revision),
    // reading a single stream on servers before 22.6 gives no position: -1 says "unknown"
    position: commit === undefined || commit > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(commit),
    recordedAt: event.created.toISOString(),
    data: asJson(event.data),
    metadata: asJson(event.metadata)
  }
}

const collect = async (events: AsyncIterable<ResolvedEvent | AllStreamResolvedEvent>) => {
  const out: Array<RecordedEvent> = []
  for await (const resolved of events) {
    const recorded = toRecorded(resolved)
    if (recorded !== undefined) out.push(recorded)
  }
  return out
}

export const makeKurrent = Effect.fnUntraced(function*(options: KurrentOptions) {
  const client = yield* Effect.acquireRelease(
    Effect.try({ try: () => KurrentDBClient.connectionString(options.connectionString), catch: failWith("connect") }),
    (client) => Effect.tryPromise(() => client.dispose()).pipe(Effect.ignore)
  )

  const appendToStream = (stream: string, events: ReadonlyArray<EventData>, expected: ExpectedRevision) =>
    Effect.tryPromise({
      try: () => client.appendToStream(stream, events.map(toEventData), { streamState: streamState(expected) }),
      catch: (cause): WrongExpectedRevision | EventStoreError =>
        cause instanceof WrongExpectedVersionError
          ? new WrongExpectedRevision({
            stream,
            expected,
            actual: typeof cause.actualState === "bigint" && cause.actualState >= 0n ? Number(cause.actualState) : "no_stream"
          })
          : new EventStoreError({ operation: "appendToStream", cause })
    }).pipe(Effect.map((result) => ({
      nextRevision: Number(result.nextExpectedRevision),
      position: result.position === undefined ? -1 : Number(result.position.commit)
    })))

  const readStream = (stream: string, options: ReadStreamOptions = {}) => {
    if (options.maxCount === 0) return Effect.succeed([])
    const direction = options.direction === "backwards" ? BACKWARDS : FORWARDS
    return Effect.tryPromise({
      try: () =>
        collect(client.readStream(stream, {
          direction,
          fromRevision: options.fromRevision !== undefined ? BigInt(options.fromRevision) : direction === BACKWARDS ? END : START,
          maxCount: options.maxCount ?? Number.MAX_SAFE_INTEGER
        })).catch((error: unknown) => {
          if (error instanceof StreamNotFoundError) return []
          throw error
        }),
      catch: failWith("readStream")
    })
  }

  const readAllFrom = (direction: typeof FORWARDS | typeof BACKWARDS, from: Position | typeof START | typeof END, maxCount: number) =>
    collect(client.readAll({ direction, fromPosition: from, maxCount, filter: excludeSystemEvents() }))

  const readAll = (options: ReadAllOptions = {}) => {
    const maxCount = options.maxCount ?? Number.MAX_SAFE_INTEGER
    if (maxCount === 0) return Effect.succeed([])
    const from = options.fromPosition
    return Effect.tryPromise({
      try: async () => {
        if (options.direction !== "backwards") return readAllFrom(FORWARDS, from === undefined ? START : positionOf(from), maxCount)
        if (from === undefined) return readAllFrom(BACKWARDS, END, maxCount)
        // Backwards, the server starts strictly before the given position; ours is inclusive,
        // so the event at `from` is read forwards (inclusive there) and put first.
        const [at] = await readAllFrom(FORWARDS, positionOf(from), 1)
        if (at?.position !== from) return readAllFrom(BACKWARDS, positionOf(from), maxCount)
        return maxCount === 1 ? [at] : [at, ...await readAllFrom(BACKWARDS, positionOf(from), maxCount - 1)]
      },
      catch: failWith("readAll")
    })
  }

  // The server's subscription from a position is exclusive, like our `after`.
  const subscribeToAll = (options: SubscribeToAllOptions = {}): Stream.Stream<RecordedEvent, EventStoreError> =>
    Stream.unwrap(Effect.map(
      Effect.acquireRelease(
        Effect.try({
          try: () =>
            client.subscribeToAll({
              fromPosition: options.after === undefined ? START : positionOf(options.after),
              filter: excludeSystemEvents()
            }),
          catch: failWith("subscribeToAll")
        }),
        (subscription) => Effect.tryPromise(() => subscription.unsubscribe()).pipe(Effect.ignore)
      ),
      (subscription) =>
        Stream.fromAsyncIterable<AllStreamResolvedEvent, EventStoreError>(subscription, failWith("subscribeToAll")).pipe(
          Stream.map(toRecorded),
          Stream.filter((event): event is RecordedEvent => event !== undefined)
        )
    ))

  return EventStore.of({
    appendToStream,
    readStream,
    readAll,
    subscribeToAll,
    headPosition: Effect.tryPromise({
      try: () => readAllFrom(BACKWARDS, END, 1).then(([newest]) => newest?.position),
      catch: failWith("headPosition")
    })
  })
})

/** The event store on the EventStoreDB / KurrentDB cluster at `connectionString`; disposes the client on release. */
export const layerKurrent = (options: KurrentOptions): Layer.Layer<EventStore, EventStoreError> =>
  Layer.effect(EventStore, makeKurrent(options))
