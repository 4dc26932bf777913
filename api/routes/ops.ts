/** Liveness, readiness (NATS and the event store reachable) and Prometheus metrics. Public. */
import { Effect, Schema } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { route } from "../route.ts"

const Health = Schema.Struct({ status: Schema.Literals(["ok", "unavailable"]), checks: Schema.optionalKey(Schema.Record(Schema.String, Schema.String)) })

/** `checks`: what must answer for the node to be ready, by name. */
export const opsRoutes = (checks: Readonly<Record<string, Effect.Effect<unknown, unknown>>>) => [
  route({
    method: "GET", url: "/health", tags: ["ops"], roles: "public",
    summary: "Liveness: the process answers",
    responses: { 200: { description: "alive", schema: Health } },
    handler: () => Effect.succeed({ status: 200, body: { status: "ok" } })
  }),
  route({
    method: "GET", url: "/ready", tags: ["ops"], roles: "public",
    summary: "Readiness: NATS and the event store are reachable",
    responses: { 200: { description: "ready", schema: Health }, 503: { description: "a dependency is down", schema: Health } },
    handler: () =>
      Effect.gen(function*() {
        const results = yield* Effect.forEach(Object.entries(checks), ([name, check]) =>
          check.pipe(
            Effect.timeout("2 seconds"),
            Effect.match({ onFailure: (e) => [name, `down: ${String((e as { _tag?: string })._tag ?? e)}`] as const, onSuccess: () => [name, "ok"] as const })
          ), { concurrency: "unbounded" })
        const ok = results.every(([, status]) => status === "ok")
        return { status: ok ? 200 : 503, body: { status: ok ? "ok" : "unavailable", checks: Object.fromEntries(results) } }
      })
  }),
  route({
    method: "GET", url: "/metrics", tags: ["ops"], roles: "public",
    summary: "Prometheus text exposition",
    responses: { 200: { description: "metrics", contentType: "text/plain; version=0.0.4" } },
    handler: () => Effect.map(PrometheusMetrics.format(), (text) => ({ status: 200, body: text, headers: { "content-type": "text/plain; version=0.0.4" } }))
  })
]
