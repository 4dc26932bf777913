/**
 * Builds the Fastify app from route declarations: body parsing (JSON and merge-patch, with a size
 * limit; streamed uploads bypass both), per-key rate limits, failed authentications limited per
 * address, admission bounds on commands and reads, deadlines on slow requests (uploads: a minimum
 * pace instead) and a cap on connections, problem+json for every error Fastify or Node's HTTP parser raises, HTTP metrics, and /docs.
 */
import { STATUS_CODES } from "node:http"
import { Socket } from "node:net"
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify"
import swagger from "@fastify/swagger"
import swaggerUi from "@fastify/swagger-ui"
import { Deferred, Effect, Exit, Metric } from "effect"
import type { ApiKeys } from "../domain/ApiKeys.ts"
import * as Admission from "./admission.ts"
import { nestedTooDeep, tooDeep } from "./jsonDepth.ts"
import { openApi } from "./openapi.ts"
import { InvalidRequest, toProblem } from "./problems.ts"
import * as RateLimiter from "./rateLimit.ts"
import { type AdmissionKind, register, type AnyRoute, type Runner } from "./route.ts"
import { defaultUploadPace, isUpload, type UploadPace } from "./streaming.ts"

export interface AppOptions<R> {
  readonly routes: ReadonlyArray<AnyRoute<R>>
  readonly run: Runner<R | ApiKeys>
  /** request bodies above this many bytes answer 413 */
  readonly bodyLimit?: number
  readonly logger?: boolean
  /** per-API-key token buckets; unlimited when absent */
  readonly rateLimit?: RateLimiter.RateLimitPolicy
  /** failed authentications per remote address, beyond which it is answered 429; unlimited when absent */
  readonly authFailures?: RateLimiter.RateLimit
  /** how many commands and reads run at once, and wait; unbounded when absent */
  readonly admission?: Partial<Record<AdmissionKind, Admission.AdmissionLimit>>
  /** JSON bodies nested deeper answer 400 (default 64) */
  readonly maxJsonDepth?: number
  /**
   * a request's headers must arrive within this (default 10 s), and the whole request within
   * `requestMillis` (default 30 s) — except an upload's body, bounded by `uploadPace` instead
   */
  readonly timeouts?: { readonly headersMillis: number; readonly requestMillis: number }
  /** how slowly an upload's body may arrive (default: 30 s without a byte, or under 16 KiB/s on average) */
  readonly uploadPace?: UploadPace
  /** open connections at most; more are closed at once (default: no cap) */
  readonly maxConnections?: number
}

const unbounded: Admission.AdmissionLimit = { capacity: Number.MAX_SAFE_INTEGER, queue: 0, maxWaitMillis: 0 }

/**
 * What Node's HTTP parser refuses before there is a request (headers or body too slow, headers too
 * large, malformed HTTP) is answered problem+json too, and the connection closed.
 */
const clientError = (error: NodeJS.ErrnoException, socket: Socket) => {
  if (error.code === "ECONNRESET" || socket.destroyed) return
  const answered = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true
  if (!socket.writable || answered) return void socket.destroy()
  const { problem } = toProblem(
    error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? { _tag: "RequestTimeout", detail: "the request's headers or body did not arrive in time" }
      : error.code === "HPE_HEADER_OVERFLOW"
      ? { _tag: "HeadersTooLarge", detail: "the request's headers exceed the server's limit" }
      : { _tag: "InvalidRequest", issues: [], detail: "malformed HTTP request" },
    ""
  )
  const body = JSON.stringify(problem)
  const head = `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n`
  socket.end(head + body, () => socket.destroy())
}

const requestTimedOut = Object.assign(new Error("request timeout"), { code: "ERR_HTTP_REQUEST_TIMEOUT" })

/**
 * The whole-request deadline, kept by the app rather than by Node (whose requestTimeout is one value
 * for every route): a request whose body has not arrived `millis` after its headers is answered 408
 * problem+json and closed, as Node would, or only closed when its answer already went out. Upload
 * routes are left out: their body is bounded by its pace (api/streaming.ts). So are requests without a
 * connection (`app.inject`'s stand-in socket): there is nothing to close.
 */
const requestDeadline = (request: FastifyRequest, millis: number) => {
  const raw = request.raw
  if (raw.complete || !(raw.socket instanceof Socket)) return
  const timer = setTimeout(() => {
    if (!raw.complete && !raw.socket.destroyed) clientError(requestTimedOut, raw.socket)
  }, millis)
  timer.unref()
  // A request that never ends (its client went away) leaves the timer to find its socket destroyed.
  raw.once("end", () => clearTimeout(timer))
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

/**
 * The methods the routes take at a concrete path (`:param` one segment, `*` the rest); GET brings HEAD.
 * Exactly the path: Fastify does not take a trailing slash, so neither does this (a GET of `…/metrics/`
 * answered 405 naming GET, found by the re-attack of stop 27).
 */
const routeMethods = (routes: ReadonlyArray<{ readonly method: string; readonly url: string }>) => {
  const patterns = routes.map((route) => ({
    method: route.method,
    pattern: new RegExp(`^${route.url.split("/").map((part) => part.startsWith(":") ? "[^/]+" : part === "*" ? ".*" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("/")}$`)
  }))
  return (path: string): Array<string> => {
    const methods = new Set(patterns.filter(({ pattern }) => pattern.test(path)).map(({ method }) => method))
    if (methods.has("GET")) methods.add("HEAD")
    return [...methods].sort()
  }
}

export const buildApp = async <R>(options: AppOptions<R>): Promise<FastifyInstance> => {
  const timeouts = options.timeouts ?? { headersMillis: 10_000, requestMillis: 30_000 }
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 1_048_576,
    return503OnClosing: true,
    // a path parameter's length is its schema's to bound (a dead letter id: 512), not the router's 100
    maxParamLength: 512,
    // A client that sends its headers slowly (or not at all) is answered 408 and closed, checked often
    // enough that the deadline holds to a fraction of itself. Node's whole-request deadline is off (0:
    // headersTimeout still holds): it would cap every upload; the app keeps it per route (requestDeadline).
    requestTimeout: 0,
    http: {
      headersTimeout: timeouts.headersMillis,
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, timeouts.headersMillis / 4))
    },
    clientErrorHandler: clientError,
    // Keys of a JSON body are data: `__proto__` and `constructor` are kept as the fields the client
    // sent, not refused, since the domain merges and looks members up as own properties only
    // (domain/mergePatch.ts), so no key can reach a prototype.
    onProtoPoisoning: "ignore",
    onConstructorPoisoning: "ignore",
    // The router's own refusals (a malformed %-escape, a path parameter over 512 characters) are
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

  if (options.maxConnections !== undefined) app.server.maxConnections = options.maxConnections

  const uploadRoutes = new Set(options.routes.filter((route) => isUpload(route.body)).map((route) => `${route.method} ${route.url}`))
  app.addHook("onRequest", (request, _reply, done) => {
    if (!uploadRoutes.has(`${request.method} ${request.routeOptions.url}`)) requestDeadline(request, timeouts.requestMillis)
    done()
  })

  // JSON bodies are UTF-8 (RFC 8259): bytes that are not are refused, not stored as U+FFFD. A body
  // nested deeper than maxJsonDepth is refused before it is parsed (api/jsonDepth.ts).
  const parseJson = app.getDefaultJsonParser("ignore", "ignore")
  const utf8 = new TextDecoder("utf-8", { fatal: true })
  const maxJsonDepth = options.maxJsonDepth ?? 64
  const jsonParser = (request: FastifyRequest, body: Buffer, done: (error: Error | null, value?: unknown) => void) => {
    let text: string
    try {
      text = utf8.decode(body)
    } catch {
      return done(Object.assign(new Error("body is not valid UTF-8"), { statusCode: 400 }))
    }
    const deep = tooDeep(text, maxJsonDepth)
    if (deep !== undefined) return done(nestedTooDeep(deep, maxJsonDepth))
    parseJson(request, text, done)
  }
  app.removeContentTypeParser("application/json")
  for (const type of ["application/json", "application/merge-patch+json"]) app.addContentTypeParser(type, { parseAs: "buffer" }, jsonParser)

  app.setErrorHandler((error: FastifyError, request, reply) => {
    // Refused by our own body parser: it already names the field.
    if (error instanceof InvalidRequest) {
      const { problem } = toProblem(error as unknown as { readonly _tag: string }, request.url)
      return reply.status(problem.status).type("application/problem+json").send(JSON.stringify(problem))
    }
    const tag = fastifyProblems[error.code] ?? (error.statusCode !== undefined && error.statusCode < 500 ? "InvalidRequest" : "Internal")
    const issue = { in: "body", path: [], message: error.message }
    // A server-side failure's message stays in the log, not in the answer.
    const detail = tag === "Internal" ? "internal error" : error.message
    const { problem } = toProblem(tag === "InvalidRequest" ? { _tag: tag, issues: [issue] } : { _tag: tag, detail }, request.url)
    if (problem.status >= 500) request.log.error(error)
    return reply.status(problem.status).type("application/problem+json").send(JSON.stringify(problem))
  })
  // A path a route has, asked with another method: 405 with the methods it takes (RFC 9110 §15.5.6), not
  // 404 (before stop 27: a DELETE of the metrics route said there was no such route).
  const methodsOf = routeMethods(options.routes)
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0]!
    // as the router reads it: escapes decoded, but not those of reserved characters (%2F stays in its segment)
    let decoded = path
    try {
      decoded = decodeURI(path)
    } catch {
      // a malformed escape: no route has it
    }
    const allowed = methodsOf(decoded)
    const { problem } = allowed.length === 0
      ? toProblem({ _tag: "NotFound", detail: `no route ${request.method} ${path}` }, request.url)
      : toProblem({ _tag: "MethodNotAllowed", detail: `${path} takes ${allowed.join(", ")}, not ${request.method}` }, request.url)
    if (allowed.length > 0) reply.header("allow", allowed.join(", "))
    return reply.status(problem.status).type("application/problem+json").send(JSON.stringify(problem))
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
    authFailures: options.authFailures === undefined ? RateLimiter.unlimitedFailures : RateLimiter.makeAuthFailures(options.authFailures),
    admissions: {
      commands: Admission.make("commands", options.admission?.commands ?? unbounded),
      reads: Admission.make("reads", options.admission?.reads ?? unbounded)
    },
    uploadPace: options.uploadPace ?? defaultUploadPace,
    closing: Deferred.await(closing)
  }
  for (const route of options.routes) register(app, route, context)
  return app
}
