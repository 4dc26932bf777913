/**
 * The event store on an EventStoreDB / KurrentDB cluster, through `@kurrent/kurrentdb-client`.
 *
 * Our `position` is the event's commit position in `$all`. Events appended over gRPC are implicitly
 * committed, so each has its own log position and commit == prepare (the server's AllReader reports
 * `CommitEventRecord(event, event.LogPosition)`); `{ commit: n, prepare: n }` therefore addresses it exactly.
 */
import {
  ANY,
  AppendConsistencyViolationError,
  BACKWARDS,
  END,
  FORWARDS,
  KurrentDBClient,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  STREAM_STATE,
  StreamNotFoundError,
  WrongExpectedVersionError,
  excludeSystemEvents,
  jsonEvent
} from "@kurrent/kurrentdb-client"
import type {
  AllStreamResolvedEvent,
  AppendRecordInput,
  AppendStreamState,
  ConsistencyCheck,
  CurrentStreamState,
  JSONType,
  Position,
  ResolvedEvent
} from "@kurrent/kurrentdb-client"
import { Effect, Layer, Stream } from "effect"
import {
  EventStore,
  EventStoreError,
  meetsExpectedRevision,
  repeatedStream,
  WrongExpectedRevision,
  WrongExpectedRevisions
} from "../../domain/EventStore.ts"
import type {
  AppendResult,
  EventData,
  ExpectedRevision,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  RevisionConflict,
  StreamAppend,
  SubscribeToAllOptions
} from "../../domain/EventStore.ts"

export interface KurrentOptions {
  /** e.g. `esdb://localhost:2113?tls=false` or `kurrentdb+discover://…` */
  readonly connectionString: string
}

const failWith = (operation: string) => (cause: unknown) => new EventStoreError({ operation, cause })

const streamState = (expected: ExpectedRevision): AppendStreamState =>
  expected === "any" ? ANY : expected === "no_stream" ? NO_STREAM : expected === "stream_exists" ? STREAM_EXISTS : BigInt(expected)

const actualOf = (state: CurrentStreamState | undefined): RevisionConflict["actual"] =>
  typeof state === "bigint" && state >= 0n ? Number(state) : "no_stream"

const positionOf = (n: number): Position => ({ commit: BigInt(n), prepare: BigInt(n) })

const text = new TextDecoder()

/**
 * Metadata travels as a one-key object `{ "tributary-metadata": "<its JSON text>" }`, the same on both
 * append paths:
 * - `appendRecords` (client 1.3.1) accepts only a plain object whose values are all strings (they become
 *   the record's properties) and rejects the `Uint8Array` this adapter used to send;
 * - `appendToStream` writes an object as its JSON bytes but drops falsy metadata (null, 0, false, ""),
 *   which would then read back as no metadata at all; this object is never falsy.
 * One string holds any JSON exactly (nested values, numbers, nulls), where flattening our metadata
 * into string properties would not. Reading takes the key from whatever object the server returns
 * (it may add properties of its own) and reads events stored before this encoding as they are.
 */
const metadataKey = "tributary-metadata"
const toMetadata = (metadata: EventData["metadata"]) => ({ [metadataKey]: JSON.stringify(metadata) })

/** Exported for test/infra/eventStoreKurrent.test.ts, which checks the encoding against the client without a server. */
export const toEventData = (event: EventData) =>
  jsonEvent({ id: event.eventId, type: event.type, data: event.data as JSONType, metadata: toMetadata(event.metadata) })

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

export const fromMetadata = (value: unknown): RecordedEvent["metadata"] => {
  const metadata = asJson(value)
  if (typeof metadata === "object" && metadata !== null && !Array.isArray(metadata)) {
    const encoded = (metadata as Record<string, unknown>)[metadataKey]
    if (typeof encoded === "string") return JSON.parse(encoded)
  }
  return metadata
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
    metadata: fromMetadata(event.metadata)
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
            actual: actualOf(cause.actualState)
          })
          : new EventStoreError({ operation: "appendToStream", cause })
    }).pipe(Effect.map((result) => ({
      nextRevision: Number(result.nextExpectedRevision),
      position: result.position === undefined ? -1 : Number(result.position.commit)
    })))

  /** Where a stream is: its last revision and that event's position, or -1 and -1 when absent. */
  const headOf = async (stream: string): Promise<AppendResult> => {
    const [last] = await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END, maxCount: 1 }))
      .catch((error: unknown) => {
        if (error instanceof StreamNotFoundError) return []
        throw error
      })
    return last === undefined ? { nextRevision: -1, position: -1 } : { nextRevision: last.revision, position: last.position }
  }

  /** Are this append's events already stored right where it would put them (a retry)? */
  const storedAlready = async (append: StreamAppend): Promise<AppendResult | undefined> => {
    const expected = append.expectedRevision
    if (append.events.length === 0 || !(typeof expected === "number" || expected === "no_stream")) return undefined
    const from = expected === "no_stream" ? 0 : expected + 1
    const stored = await collect(client.readStream(append.stream, { direction: FORWARDS, fromRevision: BigInt(from), maxCount: append.events.length }))
      .catch(() => [])
    if (stored.length !== append.events.length || stored.some((e, i) => e.eventId !== append.events[i]!.eventId)) return undefined
    const last = stored[stored.length - 1]!
    return { nextRevision: last.revision, position: last.position }
  }

  type MultiOutcome =
    | { readonly _tag: "Appended"; readonly results: ReadonlyArray<AppendResult> }
    | { readonly _tag: "Conflict"; readonly conflicts: ReadonlyArray<RevisionConflict> }

  /**
   * One `appendRecords` call (a KurrentDB server with the v2 AppendRecords RPC; client 1.3): the
   * records in the order given, so the global log keeps that order, and one consistency check per
   * stream, all evaluated atomically before the commit. Written against the installed client's types
   * only — no server can run on these machines — so this path is unverified here; the conformance
   * suite runs it when EVENTSTORE_URL is set. `done` holds appends found already stored (retries).
   */
  const appendRecords = async (appends: ReadonlyArray<StreamAppend>, done: Map<number, AppendResult>, attempt: number): Promise<MultiOutcome> => {
    const pending = appends.flatMap((append, index) => (done.has(index) ? [] : [{ append, index }]))
    const records: Array<AppendRecordInput> = pending.flatMap(({ append }) =>
      append.events.map((event) => ({ streamName: append.stream, record: toEventData(event) })))
    const checks: Array<ConsistencyCheck> = pending.flatMap(({ append }) =>
      append.expectedRevision === "any" ? [] : [{ type: STREAM_STATE, streamName: append.stream, expectedState: streamState(append.expectedRevision) }])
    const results = new Map(done)
    if (records.length === 0) {
      // Only checks: nothing to commit, so the streams are read (the server needs at least one record).
      const conflicts: Array<RevisionConflict> = []
      for (const { append, index } of pending) {
        const head = await headOf(append.stream)
        if (meetsExpectedRevision(append.expectedRevision, head.nextRevision)) results.set(index, head)
        else conflicts.push({ stream: append.stream, expected: append.expectedRevision, actual: head.nextRevision === -1 ? "no_stream" : head.nextRevision })
      }
      if (conflicts.length > 0) return { _tag: "Conflict", conflicts }
      return { _tag: "Appended", results: appends.map((_, i) => results.get(i)!) }
    }
    let response: Awaited<ReturnType<typeof client.appendRecords>>
    try {
      response = await client.appendRecords(records, checks)
    } catch (error) {
      const violations = error instanceof AppendConsistencyViolationError
        ? error.violations.map((v) => ({ stream: v.streamName, actual: actualOf(v.actualState) }))
        : error instanceof WrongExpectedVersionError
        ? [{ stream: error.streamName, actual: actualOf(error.actualState) }]
        : undefined
      if (violations === undefined) throw error
      // A stream whose events are already in place was appended by an earlier try of this same call:
      // it counts as done, and the others are tried again without it. (A stream expected at `any` is
      // never checked, so its retry relies on the server recognising the record ids.)
      const conflicts: Array<{ readonly index: number; readonly conflict: RevisionConflict }> = []
      let retried = 0
      for (const violation of violations) {
        const at = pending.find((p) => p.append.stream === violation.stream)
        if (at === undefined) continue
        const retry = await storedAlready(at.append)
        if (retry !== undefined) {
          done.set(at.index, retry)
          retried++
        } else {
          conflicts.push({ index: at.index, conflict: { stream: violation.stream, expected: at.append.expectedRevision, actual: violation.actual } })
        }
      }
      if (conflicts.length > 0) return { _tag: "Conflict", conflicts: conflicts.sort((a, b) => a.index - b.index).map((c) => c.conflict) }
      if (retried === 0 || attempt >= 3) throw error // nothing learned from the violation: report it as it came
      return appendRecords(appends, done, attempt + 1)
    }
    // The response gives each stream's new revision and the position of the last record only: each
    // stream's own last position is read back from $all, where the transaction's records lie together.
    const revisions = new Map(response.responses.map((r) => [r.streamName, Number(r.revision)]))
    const last = Number(response.position)
    const positions = new Map((await readAllRecords(last, records.length)).map((e) => [e.eventId, e.position]))
    for (const { append, index } of pending) {
      if (append.events.length === 0) {
        results.set(index, await headOf(append.stream))
        continue
      }
      results.set(index, {
        nextRevision: revisions.get(append.stream) ?? -1,
        position: positions.get(append.events[append.events.length - 1]!.eventId) ?? last
      })
    }
    return { _tag: "Appended", results: appends.map((_, i) => results.get(i)!) }
  }

  const appendToStreams = (appends: ReadonlyArray<StreamAppend>): Effect.Effect<ReadonlyArray<AppendResult>, WrongExpectedRevisions | EventStoreError> => {
    if (appends.length === 0) return Effect.succeed([])
    const repeated = repeatedStream(appends)
    if (repeated !== undefined) return Effect.die(new Error(`appendToStreams: stream ${repeated} appears more than once`))
    return Effect.tryPromise({ try: () => appendRecords(appends, new Map(), 1), catch: failWith("appendToStreams") }).pipe(
      Effect.flatMap((outcome) =>
        outcome._tag === "Appended"
          ? Effect.succeed(outcome.results)
          : Effect.fail(new WrongExpectedRevisions({ conflicts: [outcome.conflicts[0]!, ...outcome.conflicts.slice(1)] })))
    )
  }

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

  /** `maxCount` events backwards from `from`, inclusive (the server starts strictly before it backwards). */
  const readAllRecords = async (from: number, maxCount: number) => {
    const [at] = await readAllFrom(FORWARDS, positionOf(from), 1)
    if (at?.position !== from) return readAllFrom(BACKWARDS, positionOf(from), maxCount)
    return maxCount === 1 ? [at] : [at, ...await readAllFrom(BACKWARDS, positionOf(from), maxCount - 1)]
  }

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
        return readAllRecords(from, maxCount)
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
    appendToStreams,
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
