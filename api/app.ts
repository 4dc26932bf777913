/**
 * Builds the Fastify app from route declarations: body parsing (JSON and merge-patch, with a size
 * limit; streamed uploads bypass both), per-key rate limits, problem+json for every error Fastify
 * itself raises, HTTP metrics, and /docs.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from "fastify"
import swagger from "@fastify/swagger"
import swaggerUi from "@fastify/swagger-ui"
import { Deferred, Effect, Exit, Metric } from "effect"
import type { ApiKeys } from "../domain/ApiKeys.ts"
import { openApi } from "./openapi.ts"
import { toProblem } from "./problems.ts"
import * as RateLimiter from "./rateLimit.ts"
import { register, type AnyRoute, type Runner } from "./route.ts"

export interface AppOptions<R> {
  readonly routes: ReadonlyArray<AnyRoute<R>>
  readonly run: Runner<R | ApiKeys>
  /** request bodies above this many bytes answer 413 */
  readonly bodyLimit?: number
  readonly logger?: boolean
  /** per-API-key token buckets; unlimited when absent */
  readonly rateLimit?: RateLimiter.RateLimitPolicy
}

const httpDuration = Metric.histogram("tributary_http_request_duration_seconds", {
  description: "HTTP request latency",
  boundaries: Metric.boundariesFromIterable([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
})

const fastifyProblems: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "PayloadTooLarge",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "UnsupportedMediaType",
  FST_ERR_CTP_EMPTY_JSON_BODY: "InvalidRequest",
  FST_ERR_CTP_INVALID_JSON_BODY: "InvalidRequest"
}

export const buildApp = async <R>(options: AppOptions<R>): Promise<FastifyInstance> => {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 1_048_576,
    return503OnClosing: true,
    // Keys of a JSON body are data: `__proto__` and `constructor` are kept as the fields the client
    // sent, not refused, since the domain merges and looks members up as own properties only
    // (domain/mergePatch.ts), so no key can reach a prototype.
    onProtoPoisoning: "ignore",
    onConstructorPoisoning: "ignore",
    // The router's own refusals (a malformed %-escape, a path parameter over 100 characters) are
    // client mistakes like any other: 400 problem+json, not Fastify's own error body.
    frameworkErrors: (error, request, reply: FastifyReply) => {
      const { problem } = toProblem({ _tag: "InvalidRequest", issues: [{ in: "path", path: [], message: error.message }] }, request.url)
      return reply.status(problem.status).type("application/problem+json").send(JSON.stringify(problem))
    }
  })

  // Closing: requests in flight finish, and each answer closes its keep-alive connection, so the
  // server is not kept open by clients' idle connections (Fastify closes those idle at close time).
  // Streamed answers end then too (they would otherwise hold the close up for as long as clients follow).
  const closing = Deferred.makeUnsafe<void>()
  app.addHook("preClose", (done) => {
    Deferred.doneUnsafe(closing, Exit.void)
    done()
  })
  app.addHook("onSend", (_request, reply, payload, done) => {
    if (Deferred.isDoneUnsafe(closing)) reply.header("connection", "close")
    done(null, payload)
  })

  app.addContentTypeParser("application/merge-patch+json", { parseAs: "string" }, app.getDefaultJsonParser("ignore", "ignore"))

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const tag = fastifyProblems[error.code] ?? (error.statusCode !== undefined && error.statusCode < 500 ? "InvalidRequest" : "Internal")
    const issue = { in: "body", path: [], message: error.message }
    // A server-side failure's message stays in the log, not in the answer.
    const detail = tag === "Internal" ? "internal error" : error.message
    const { problem } = toProblem(tag === "InvalidRequest" ? { _tag: tag, issues: [issue] } : { _tag: tag, detail }, request.url)
    if (problem.status >= 500) request.log.error(error)
    return reply.status(problem.status).type("application/problem+json").send(JSON.stringify(problem))
  })
  app.setNotFoundHandler((request, reply) => {
    const { problem } = toProblem({ _tag: "NotFound", detail: `no route ${request.method} ${request.url.split("?")[0]}` }, request.url)
    return reply.status(404).type("application/problem+json").send(JSON.stringify(problem))
  })

  app.addHook("onResponse", (request, reply, done) => {
    const attributes = { method: request.method, route: request.routeOptions.url ?? "unmatched", status: String(reply.statusCode) }
    Effect.runSync(Metric.update(Metric.withAttributes(httpDuration, attributes), reply.elapsedTime / 1000))
    done()
  })

  await app.register(swagger, {
    mode: "static",
    specification: {
      document: openApi(options.routes as ReadonlyArray<AnyRoute<unknown>>, {
        title: "Tributary",
        version: "1",
        description: "Entity history platform: commands, current and point-in-time state, ordered history. Errors are application/problem+json (RFC 9457)."
      }) as never
    }
  })
  await app.register(swaggerUi, { routePrefix: "/docs" })

  const context = {
    run: options.run,
    rateLimiter: options.rateLimit === undefined ? RateLimiter.unlimited : RateLimiter.make(options.rateLimit),
    closing: Deferred.await(closing)
  }
  for (const route of options.routes) register(app, route, context)
  return app
}
