/**
 * The SDK's door (issue 8): `POST /v1/apps/{app}/events` takes a batch of an app's events, checks each
 * on its own (a bad one is rejected with its index and reason, the rest kept) and answers 202
 * `{accepted, rejected}` once JetStream stored every accepted event on EVENTS. An `app:<id>` key sends
 * for its own app only; a service key may send for any app (backfills, server-side SDKs); admin may too.
 *
 * Refused before the body is read: an unknown app (404, looked up through the metadata cache, so
 * briefly cached), and an app whose device pipeline is too far behind (503 + Retry-After). Refused
 * while reading: a body, line or batch over its limit (413), a media type or encoding not listed (415).
 * Publishing into a full EVENTS answers 503 + Retry-After. Sending a batch again is harmless: the
 * pipeline drops events it has seen, by (app, deviceId, seq).
 */
import { Clock, Duration, Effect, Option, Schema } from "effect"
import { checkBatch, Rejection } from "../../domain/events/eventChecks.ts"
import { EventIntake } from "../../domain/events/EventIntake.ts"
import { Metadata } from "../../domain/events/Metadata.ts"
import { Uint64String } from "../../domain/ids.ts"
import { IntakeError } from "../../domain/ingest/Intake.ts"
import { forApp } from "../authorization.ts"
import { makeByteBudget, withMeteredBody } from "../byteBudget.ts"
import { type EventsBodyLimits, readEventsBody } from "../eventsBody.ts"
import { NotFound, problemResponse } from "../problems.ts"
import { route } from "../route.ts"
import { ndjson, readWithin, upload } from "../streaming.ts"

export interface AppEventsRoutesOptions extends EventsBodyLimits {
  /** bytes of one body, after gzip is inflated (EVENTS_BODY_MAX_BYTES) */
  readonly bodyMaxBytes: number
  /** bytes of bodies (inflated) this process holds at once, over all requests (EVENTS_INFLIGHT_MAX_BYTES); at least two bodies'; one app at most an eighth (at least one body's) */
  readonly inflightMaxBytes: number
  /** how long a body may take to arrive whole (EVENTS_BODY_TIMEOUT); 408 beyond */
  readonly bodyTimeout: Duration.Input
}

export const EventsAccepted = Schema.Struct({
  /** events stored on EVENTS */
  accepted: Schema.Int,
  /** events refused, by 0-based index in the batch, with the field and why */
  rejected: Schema.Array(Rejection)
}).annotate({ identifier: "EventsAccepted" })

export const appEventsRoutes = (options: AppEventsRoutesOptions) => {
  const budget = makeByteBudget(options.inflightMaxBytes, options.bodyMaxBytes, { what: "event bodies", setting: "EVENTS_INFLIGHT_MAX_BYTES", owner: "app" })
  const refused = () => new IntakeError({ operation: budget.refusal, cause: null })
  const bodyTimeout = Duration.fromInputUnsafe(options.bodyTimeout)
  return [route({
    method: "POST", url: "/v1/apps/:app/events", tags: ["events"], roles: ["app", "service"], admission: "commands",
    summary: "Send a batch of an app's SDK events: a JSON array (application/json) or JSON Lines (application/x-ndjson), " +
      "`Content-Encoding: gzip` allowed. Each event is checked on its own; 202 `{accepted, rejected: [{index, reason}]}` " +
      "once JetStream stored every accepted one. Sending a batch again is harmless (events are deduplicated by app, deviceId and seq)",
    authorize: ({ principal, params }) => forApp(principal, params.app),
    params: Schema.Struct({ app: Uint64String }),
    headers: Schema.Struct({ "content-type": Schema.optionalKey(Schema.String) }),
    body: upload({ contentTypes: ["application/json", ndjson], maxBytes: options.bodyMaxBytes, description: "SDK events (domain/events/SdkEvent.ts)" }),
    responses: {
      202: { description: "on JetStream: how many were accepted, and each refused event's index and reason", schema: EventsAccepted },
      400: problemResponse("a body that is not a JSON array / JSON Lines, not UTF-8, nested deeper than MAX_JSON_DEPTH (an array), or holds no event"),
      401: problemResponse("missing or unknown API key"),
      403: problemResponse("a key of another app"),
      404: problemResponse("no such app"),
      408: problemResponse("the body did not arrive whole within EVENTS_BODY_TIMEOUT, or arrived too slowly; nothing of it was kept"),
      413: problemResponse("the body (inflated), a line or the batch's events over their limit; nothing of it was kept"),
      415: problemResponse("a media type or content encoding not listed"),
      503: problemResponse("EVENTS is full, the app's device pipeline is behind, or this process is reading too many event bodies at once; see Retry-After")
    },
    handler: ({ params, headers, body }) =>
      Effect.gen(function*() {
        const app = yield* Metadata.use((metadata) => metadata.app(params.app)).pipe(
          Effect.mapError((error) => new IntakeError({ operation: "look up the app", cause: error }))
        )
        if (Option.isNone(app)) return yield* new NotFound({ detail: `no app ${params.app}` })
        const intake = yield* EventIntake
        yield* intake.admit(params.app)
        // the body's bytes stay taken until the request ends: its events are held until they are on EVENTS
        return yield* withMeteredBody(budget, params.app, body, refused, (metered) => Effect.gen(function*() {
          const items = yield* readWithin(readEventsBody(metered, headers["content-type"], options), bodyTimeout, "EVENTS_BODY_TIMEOUT", "an events body")
          const now = yield* Clock.currentTimeMillis
          const { accepted, rejected } = yield* checkBatch(items, now, { maxEventBytes: options.maxLineBytes })
          if (accepted.length > 0) yield* intake.publish({ app: params.app, receivedAt: new Date(now).toISOString(), events: accepted })
          return { status: 202 as const, body: { accepted: accepted.length, rejected } }
        }))
      })
  })]
}
