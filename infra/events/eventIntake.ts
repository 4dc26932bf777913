/**
 * EventIntake on JetStream: an app's accepted events published on EVENTS (`events.<app>`) as EventBatch
 * messages of at most `messageMaxBytes` characters each, all in flight at once on the one connection
 * (pipelined) and answered once every acknowledgement came back. `Nats-Msg-Id` is a digest of the
 * message's events, so a client's retry within JetStream's duplicate window stores nothing twice; later
 * copies are dropped by the device pipeline's dedupe anyway.
 *
 * Backpressure, four bounds, all refused with IntakeError (503 + Retry-After), never buffered:
 * - EVENTS holds at most EVENTS_MAX_BYTES, kept here before publishing (infra/nats/streamBytes.ts:
 *   JetStream's own byte bound drops old messages on nats-server 2.9, so it is only a backstop);
 * - EVENTS is a work queue, so what it holds for `events.<app>` is exactly the batches the app's device
 *   pipeline has not finished: above EVENTS_MAX_PENDING the app is refused before anything is read.
 *   That count is read from the stream (per subject, asked with a wildcard: scanSubject.ts's
 *   subjectCount) at most about once a second per app;
 * - an app's share of EVENTS: its batches there times the mean size of its messages above
 *   EVENTS_APP_MAX_BYTES (default a quarter of EVENTS_MAX_BYTES), so that one app whose pipeline is
 *   behind (stalled, or flooded through its SDK key, which ships inside the app) cannot fill the stream
 *   and turn every other app away. JetStream counts an app's messages, not its bytes: the mean is of the
 *   messages this process published for the app (the stream's mean until it published one).
 * - the last quarter of EVENTS is kept for apps that are not behind: one holding more than a sixteenth of
 *   its share is refused once the stream holds three quarters of EVENTS_MAX_BYTES, so that apps flooding
 *   together, each within its share, cannot fill the stream for the others.
 * The per-app bounds are checked before the body is read and again just before publishing, counting
 * what this process published for the app since the stream was last read: requests admitted together
 * reserve their bytes one after another, so they cannot pass a bound together (found by an outside
 * attack: 10 bodies of 8 MiB sent at once were all admitted against a 16 MiB share). An app with
 * nothing pending may always send one batch. Processes do not share their reservations: each of N
 * processes may take up to a second's publishes past a bound.
 */
import { createHash } from "node:crypto"
import { headers } from "@nats-io/transport-node"
import { Cache, Clock, Effect, Exit, Layer, Option, Schedule } from "effect"
import { checkedHeader } from "../../domain/checked.ts"
import type { CheckedEvent } from "../../domain/events/eventChecks.ts"
import { EventIntake } from "../../domain/events/EventIntake.ts"
import { eventBatchMark } from "../../domain/events/SdkEvent.ts"
import { groupsBySize } from "../../domain/groupsBySize.ts"
import { IntakeError } from "../../domain/ingest/Intake.ts"
import { eventsSubject, StreamNames } from "../../domain/subjects.ts"
import { Nats, tryNats } from "../nats/Nats.ts"
import { countFilter } from "../nats/scanSubject.ts"
import { boundOf, makeStreamBytes, messageBytes } from "../nats/streamBytes.ts"
import { streamFull } from "../nats/streamFull.ts"

export interface EventIntakeOptions {
  /** characters of one EventBatch message at most (nats.conf's max_payload is 8 MB); default 512 KiB */
  readonly messageMaxBytes?: number
  /** batches pending for one app on EVENTS above which it is refused (EVENTS_MAX_PENDING); default 10,000 */
  readonly maxPending?: number
  /** bytes of one app's batches on EVENTS (estimated, above) beyond which it is refused (EVENTS_APP_MAX_BYTES); default no bound */
  readonly appMaxBytes?: number
}

/** What EVENTS holds for an app: its batches, and the stream's mean message size (for an app this process has not published for). */
interface Pending {
  readonly batches: number
  readonly streamMeanBytes: number
  /** what EVENTS holds in all, and the bound its publishers keep (EVENTS_MAX_BYTES) */
  readonly streamBytes: number
  readonly streamBound: number
}

/** An app's messages this process published: their moving mean size (1/16 a message), and those of the last `recentMs`. */
interface Published {
  mean: number
  readonly recent: Array<{ readonly at: number; readonly bytes: number }>
  recentBytes: number
}

/** How long a publish counts on its own beside the backlog read from the stream (read at most a second apart): by then the read holds it. */
const recentMs = 2_000

/**
 * The part of EVENTS kept for apps that are not behind: an app holding more than `behindPart` of its share
 * is refused once the stream holds the rest. Each app's share alone let four apps flooding together, each
 * within its quarter, fill EVENTS, and every other app got 503 (the re-attack of stop 26).
 */
const keptBack = 1 / 4
const behindPart = 1 / 16

/** EVENTS at its bound: kept here, or JetStream's own refusal (infra/nats/streamFull.ts). */
const fullOperation = "EVENTS is full (EVENTS_MAX_BYTES); retry later"

/** The EventBatch message of `events`, written from their JSON (encoded once, when they were checked). */
const message = (app: string, receivedAt: string, events: ReadonlyArray<CheckedEvent>) => {
  const body = events.map((e) => e.json).join(",")
  return {
    text: `{"app":${JSON.stringify(app)},"receivedAt":${JSON.stringify(receivedAt)},"events":[${body}]}`,
    id: createHash("sha256").update(app).update("\n").update(body).digest("base64url")
  }
}

export const make = (options: EventIntakeOptions = {}) =>
  Effect.gen(function*() {
    const { jetstream, manager } = yield* Nats
    const eventsBytes = yield* makeStreamBytes(StreamNames.events)
    const messageMaxBytes = options.messageMaxBytes ?? 524_288
    const maxPending = options.maxPending ?? 10_000
    const appMaxBytes = options.appMaxBytes ?? Number.POSITIVE_INFINITY
    const capacity = 100_000

    /** Batches of the app on EVENTS now: the device pipeline's backlog. */
    const pendingOf = (app: string) =>
      tryNats("EVENTS info", () => manager.streams.info(StreamNames.events, { subjects_filter: countFilter(eventsSubject(app)) })).pipe(
        Effect.map((info): Pending => ({
          batches: info.state.subjects?.[eventsSubject(app)] ?? 0,
          streamMeanBytes: info.state.messages === 0 ? 0 : info.state.bytes / info.state.messages,
          streamBytes: info.state.bytes,
          streamBound: boundOf(info.config.max_bytes)
        })),
        Effect.mapError((error) => new IntakeError({ operation: "read the device pipeline's backlog on EVENTS", cause: error.cause }))
      )
    // Read once a second at most per app, however many requests ask; a failed read is not kept.
    const pending = yield* Cache.makeWith(pendingOf, {
      capacity,
      timeToLive: (exit) => Exit.isSuccess(exit) ? "1 second" : "0 millis"
    })
    /** What this process published for each app (least recently published out first, beyond `capacity` apps). */
    const published = new Map<string, Published>()
    /** Its recent publishes, from `now`: those older than `recentMs` are in the stream's count by now. */
    const recentOf = (app: string, now: number) => {
      const entry = published.get(app)
      if (entry === undefined) return undefined
      while (entry.recent.length > 0 && entry.recent[0]!.at <= now - recentMs) entry.recentBytes -= entry.recent.shift()!.bytes
      return entry
    }
    /**
     * Why the app is refused, if it is, with `bytes` in `messages` more to publish: its batches on EVENTS
     * (as last read, at most a second ago), those this process published since (reserved at once, so
     * requests admitted together cannot pass the bounds together), and these.
     */
    const refusal = (app: string, { batches, streamMeanBytes, streamBytes, streamBound }: Pending, messages: number, bytes: number, now: number) => {
      const entry = recentOf(app, now)
      const count = batches + (entry?.recent.length ?? 0)
      if (count + messages > maxPending && count > 0) {
        return `the device pipeline of app ${app} is behind (${count} batches pending, EVENTS_MAX_PENDING ${maxPending}); retry later`
      }
      const held = batches * (entry?.mean ?? streamMeanBytes) + (entry?.recentBytes ?? 0)
      if (held + bytes > appMaxBytes && held > 0) {
        return `the device pipeline of app ${app} is behind (about ${Math.round(held)} bytes of its batches on EVENTS, EVENTS_APP_MAX_BYTES ${appMaxBytes}); retry later`
      }
      if (held > Math.min(appMaxBytes, streamBound) * behindPart && streamBytes + (entry?.recentBytes ?? 0) + bytes > streamBound * (1 - keptBack)) {
        return `the device pipeline of app ${app} is behind (about ${Math.round(held)} bytes of its batches on EVENTS) while EVENTS is ${Math.round((1 - keptBack) * 100)}% full: the rest is kept for apps that are not behind; retry later`
      }
      return undefined
    }
    const reserve = (app: string, sizes: ReadonlyArray<number>, now: number) => {
      const entry = recentOf(app, now) ?? { mean: sizes[0]!, recent: [], recentBytes: 0 }
      for (const bytes of sizes) {
        entry.mean += (bytes - entry.mean) / 16
        entry.recent.push({ at: now, bytes })
        entry.recentBytes += bytes
      }
      published.delete(app)
      published.set(app, entry)
      if (published.size > capacity) published.delete(published.keys().next().value!)
    }
    const refuse = (operation: string) => Effect.fail(new IntakeError({ operation, cause: null }))
    /** The app's backlog as last read, and now. */
    const backlogNow = (app: string) => Effect.zip(Cache.get(pending, app), Clock.currentTimeMillis)

    const publishOne = (app: string, text: string, id: string) =>
      Effect.tryPromise({
        try: () => {
          // its events passed checkEvent: the device pipeline takes them as they are (domain/checked.ts)
          const marked = headers()
          marked.set(checkedHeader, eventBatchMark)
          return jetstream.publish(eventsSubject(app), text, { msgID: id, expect: { streamName: StreamNames.events }, headers: marked })
        },
        catch: (cause) => new IntakeError({ operation: streamFull(cause) !== undefined ? fullOperation : "publish to EVENTS", cause })
      }).pipe(
        Effect.retry({ schedule: Schedule.exponential("100 millis"), times: 3, while: (error) => error.operation !== fullOperation })
      )

    return EventIntake.of({
      admit: (app) =>
        Effect.flatMap(backlogNow(app), ([backlog, now]) => {
          const refused = refusal(app, backlog, 0, 0, now)
          return refused === undefined ? Effect.void : refuse(refused)
        }),
      publish: ({ app, receivedAt, events }) =>
        Effect.suspend(() => {
          // each message within messageMaxBytes (JetStream's max_payload; smaller messages also keep the pipeline's batches even)
          const messages = groupsBySize(events, (e) => e.json.length + 1, messageMaxBytes).map((group) => message(app, receivedAt, group))
          // as EVENTS' gate counts them (body, subject and id): for the app's share and the stream's bound alike
          const subject = eventsSubject(app)
          const sizes = messages.map((m) => messageBytes(m.text, subject, m.id))
          const total = sizes.reduce((a, b) => a + b, 0)
          const published = Effect.flatMap(backlogNow(app), ([backlog, now]) => {
            // checked and reserved in one synchronous step: no other request of the app between them
            const refused = refusal(app, backlog, messages.length, total, now)
            if (refused !== undefined) return refuse(refused)
            reserve(app, sizes, now)
            return Effect.forEach(messages, ({ text, id }) => publishOne(app, text, id), { concurrency: "unbounded", discard: true }).pipe(
              Effect.as(messages.length)
            )
          })
          return eventsBytes.admit(total, published, messages.length).pipe(
            Effect.catchTag("NatsError", (error) => Effect.fail(new IntakeError({ operation: "read EVENTS' size", cause: error.cause }))),
            Effect.flatMap(Option.match({ onNone: () => refuse(fullOperation), onSome: Effect.succeed }))
          )
        })
    })
  })

export const layer = (options: EventIntakeOptions = {}) => Layer.effect(EventIntake, make(options))
