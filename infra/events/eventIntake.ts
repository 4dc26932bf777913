/**
 * EventIntake on JetStream: an app's accepted events published on EVENTS (`events.<app>`) as EventBatch
 * messages of at most `messageMaxBytes` characters each, all in flight at once on the one connection
 * (pipelined) and answered once every acknowledgement came back. `Nats-Msg-Id` is a digest of the
 * message's events, so a client's retry within JetStream's duplicate window stores nothing twice; later
 * copies are dropped by the device pipeline's dedupe anyway.
 *
 * Backpressure, three bounds, all refused with IntakeError (503 + Retry-After), never buffered:
 * - EVENTS is discard-new with EVENTS_MAX_BYTES: a publish into a full stream is refused by JetStream;
 * - EVENTS is a work queue, so what it holds for `events.<app>` is exactly the batches the app's device
 *   pipeline has not finished: above EVENTS_MAX_PENDING the app is refused before anything is read.
 *   That count is read from the stream (per subject) at most about once a second per app;
 * - an app's share of EVENTS: its batches there times the mean size of its messages above
 *   EVENTS_APP_MAX_BYTES (default a quarter of EVENTS_MAX_BYTES), so that one app whose pipeline is
 *   behind (stalled, or flooded through its SDK key, which ships inside the app) cannot fill the stream
 *   and turn every other app away. JetStream counts an app's messages, not its bytes: the mean is of the
 *   messages this process published for the app (the stream's mean until it published one).
 */
import { createHash } from "node:crypto"
import { Cache, Effect, Exit, Layer, Schedule } from "effect"
import type { CheckedEvent } from "../../domain/events/eventChecks.ts"
import { splitBySize } from "../../domain/events/eventChecks.ts"
import { EventIntake } from "../../domain/events/EventIntake.ts"
import { IntakeError } from "../../domain/ingest/Intake.ts"
import { eventsSubject, StreamNames } from "../../domain/subjects.ts"
import { Nats, tryNats } from "../nats/Nats.ts"

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
}

/** JetStream's answer when a discard-new stream is at its bounds. */
const isFull = (cause: unknown) => /maximum (bytes|messages) exceeded|insufficient resources/i.test(String((cause as Error)?.message ?? cause))

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
    const messageMaxBytes = options.messageMaxBytes ?? 524_288
    const maxPending = options.maxPending ?? 10_000
    const appMaxBytes = options.appMaxBytes ?? Number.POSITIVE_INFINITY
    const capacity = 100_000

    /** Batches of the app on EVENTS now: the device pipeline's backlog. */
    const pendingOf = (app: string) =>
      tryNats("EVENTS info", () => manager.streams.info(StreamNames.events, { subjects_filter: eventsSubject(app) })).pipe(
        Effect.map((info): Pending => ({
          batches: info.state.subjects?.[eventsSubject(app)] ?? 0,
          streamMeanBytes: info.state.messages === 0 ? 0 : info.state.bytes / info.state.messages
        })),
        Effect.mapError((error) => new IntakeError({ operation: "read the device pipeline's backlog on EVENTS", cause: error.cause }))
      )
    // Read once a second at most per app, however many requests ask; a failed read is not kept.
    const pending = yield* Cache.makeWith(pendingOf, {
      capacity,
      timeToLive: (exit) => Exit.isSuccess(exit) ? "1 second" : "0 millis"
    })
    /** Mean characters of each app's messages this process published (moving, 1/16 per message); least recently published out first. */
    const meanBytes = new Map<string, number>()
    const published = (app: string, bytes: number) => {
      const mean = meanBytes.get(app)
      meanBytes.delete(app)
      meanBytes.set(app, mean === undefined ? bytes : mean + (bytes - mean) / 16)
      if (meanBytes.size > capacity) meanBytes.delete(meanBytes.keys().next().value!)
    }
    const refuse = (operation: string) => Effect.fail(new IntakeError({ operation, cause: null }))

    const publishOne = (app: string, text: string, id: string) =>
      Effect.tryPromise({
        try: () => jetstream.publish(eventsSubject(app), text, { msgID: id, expect: { streamName: StreamNames.events } }),
        catch: (cause) => new IntakeError({ operation: isFull(cause) ? fullOperation : "publish to EVENTS", cause })
      }).pipe(
        Effect.retry({ schedule: Schedule.exponential("100 millis"), times: 3, while: (error) => error.operation !== fullOperation })
      )

    return EventIntake.of({
      admit: (app) =>
        Effect.flatMap(Cache.get(pending, app), ({ batches, streamMeanBytes }) => {
          if (batches > maxPending) {
            return refuse(`the device pipeline of app ${app} is behind (${batches} batches pending, EVENTS_MAX_PENDING ${maxPending}); retry later`)
          }
          const bytes = batches * (meanBytes.get(app) ?? streamMeanBytes)
          return bytes > appMaxBytes
            ? refuse(`the device pipeline of app ${app} is behind (about ${Math.round(bytes)} bytes of its batches on EVENTS, EVENTS_APP_MAX_BYTES ${appMaxBytes}); retry later`)
            : Effect.void
        }),
      publish: ({ app, receivedAt, events }) =>
        Effect.suspend(() => {
          const groups = splitBySize(events, messageMaxBytes)
          return Effect.forEach(
            groups,
            (group) => {
              const { text, id } = message(app, receivedAt, group)
              published(app, Buffer.byteLength(text))
              return publishOne(app, text, id)
            },
            { concurrency: "unbounded", discard: true }
          ).pipe(Effect.as(groups.length))
        })
    })
  })

export const layer = (options: EventIntakeOptions = {}) => Layer.effect(EventIntake, make(options))
