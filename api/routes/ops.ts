/**
 * Liveness, readiness and Prometheus metrics. Public.
 *
 * `/health` is liveness: the process runs and its HTTP server answers; it checks nothing else, so a
 * process is restarted only when it is wedged itself, not when a dependency is away. `/ready` is
 * readiness: every check (api/readiness.ts) passes, so this node can take traffic now; otherwise
 * 503 problem+json naming the failing checks and why, with Retry-After.
 */
import { Effect, Schema } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { Problem } from "../problems.ts"
import { route } from "../route.ts"

const Checks = Schema.Record(Schema.String, Schema.String)
const Health = Schema.Struct({ status: Schema.Literal("ok"), checks: Schema.optionalKey(Checks) })
/** The 503 answer: a problem whose `checks` give every check's outcome ("ok" or why it failed). */
const NotReadyProblem = Schema.Struct({ ...Problem.fields, checks: Checks }).annotate({ identifier: "NotReadyProblem" })

const checkTimeout = "5 seconds"
const retryAfterSeconds = 5

export interface OpsOptions {
  /** run before /metrics is rendered, to refresh gauges read from shared state (errors ignored) */
  readonly refreshMetrics?: Effect.Effect<unknown, unknown>
}

const reasonOf = (error: unknown) =>
  typeof error === "object" && error !== null
    ? String((error as { reason?: unknown }).reason ?? (error as { _tag?: unknown })._tag ?? error)
    : String(error)

/** `checks`: what must hold for the node to be ready, by name; a failure's `reason` (or its tag) says why. */
export const opsRoutes = (checks: Readonly<Record<string, Effect.Effect<unknown, unknown>>>, options: OpsOptions = {}) => [
  route({
    method: "GET", url: "/health", tags: ["ops"], roles: "public",
    summary: "Liveness: the process answers (it checks no dependency: see /ready)",
    responses: { 200: { description: "alive", schema: Health } },
    handler: () => Effect.succeed({ status: 200, body: { status: "ok" } })
  }),
  route({
    method: "GET", url: "/ready", tags: ["ops"], roles: "public",
    summary: "Readiness: NATS and JetStream, the event store, the relay and the shard owners are all working",
    responses: {
      200: { description: "ready: every check passed", schema: Health },
      503: { description: "not ready: the failing checks, named in `detail` and `checks`", schema: NotReadyProblem, contentType: "application/problem+json" }
    },
    handler: ({ url }) =>
      Effect.gen(function*() {
        const results = yield* Effect.forEach(Object.entries(checks), ([name, check]) =>
          check.pipe(
            Effect.timeoutOrElse({ duration: checkTimeout, orElse: () => Effect.fail({ reason: `no answer within ${checkTimeout}` }) }),
            Effect.match({ onFailure: (error) => [name, reasonOf(error)] as const, onSuccess: () => [name, "ok"] as const })
          ), { concurrency: "unbounded" })
        const outcomes = Object.fromEntries(results)
        const failing = results.filter(([, outcome]) => outcome !== "ok")
        if (failing.length === 0) return { status: 200, body: { status: "ok" as const, checks: outcomes } }
        return {
          status: 503,
          headers: { "retry-after": String(retryAfterSeconds) },
          body: {
            type: "urn:tributary:problem:not-ready",
            title: "The platform is not ready",
            status: 503,
            code: "not-ready",
            detail: failing.map(([name, reason]) => `${name}: ${reason}`).join("; "),
            instance: url,
            checks: outcomes
          }
        }
      })
  }),
  route({
    method: "GET", url: "/metrics", tags: ["ops"], roles: "public",
    summary: "Prometheus text exposition",
    responses: { 200: { description: "metrics", contentType: "text/plain; version=0.0.4" } },
    handler: () =>
      Effect.ignore(options.refreshMetrics ?? Effect.void).pipe(
        Effect.andThen(PrometheusMetrics.format()),
        Effect.map((text) => ({ status: 200, body: text, headers: { "content-type": "text/plain; version=0.0.4" } }))
      )
  })
]
