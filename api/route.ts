/**
 * A route is data: method, path, who may call it (roles, then a predicate over the key and the decoded
 * request), its rate cost, the schemas of each request part and response, and a handler returning an
 * Effect. `register` mounts it on Fastify (decoding every part with effect/Schema, encoding the
 * response with its schema so nothing undeclared leaks), and `openApi` (api/openapi.ts) documents it
 * from the same schemas.
 *
 * Two kinds of body and answer: a JSON body decoded by its schema, or a streamed upload
 * (`body: upload({...})`, the handler reads a `Stream<Uint8Array>`); an answer encoded by its status's
 * schema, or a stream of items (`{ status, stream }`, sent as NDJSON or SSE). See api/streaming.ts.
 *
 * Every keyed request goes, before its body is read (Fastify's onRequest): failed authentications
 * of its address → authenticate → rate limit (the key's token bucket) → role gate → admission (a
 * slot for commands or reads, api/admission.ts); then the body is read (api/app.ts's parser refuses
 * one nested deeper than MAX_JSON_DEPTH before parsing it), decoded → `authorize` predicate → (open
 * the upload) → handler. A client without a valid key, over its limit or refused for load thus
 * costs no body reading nor decoding; its connection is closed after the answer rather than read
 * to the end of a body it may drip.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from "fastify"
import { Cause, Effect, Exit, Option, Result, Schema, type Stream } from "effect"
import { type ApiKeys, parseRole } from "../domain/ApiKeys.ts"
import { validate } from "../domain/validation.ts"
import { authenticate, authorize, type Principal, type RouteRole, scopedKinds } from "./auth.ts"
import { type Authorize, type AuthorizationInput, check } from "./authorization.ts"
import { InvalidRequest, type RequestPart, toProblem } from "./problems.ts"
import type { Admission, Release } from "./admission.ts"
import type { AuthFailures, RateLimiter } from "./rateLimit.ts"
import { type BodyStream, isUpload, negotiate, openUpload, sendStream, type Streamed, type Upload, type UploadPace } from "./streaming.ts"

type Part = Schema.Top

/** What the handler gets as `body`: the decoded JSON body, or the upload's byte stream. */
export type BodyOf<B> = B extends Upload ? BodyStream : B extends Part ? B["Type"] : never
/** What `authorize` sees as `body`: an upload is not read before the request is authorized. */
export type DecodedBodyOf<B> = B extends Upload ? undefined : B extends Part ? B["Type"] : never

/** An answer: a body encoded with its status's schema, or a stream of items (declared `stream` responses). */
export type Reply<E = never, R = never> =
  | { readonly status: number; readonly body?: unknown; readonly headers?: Readonly<Record<string, string>> }
  | { readonly status: number; readonly stream: Stream.Stream<unknown, E, R>; readonly headers?: Readonly<Record<string, string>> }

export interface RouteInput<P extends Part, Q extends Part, H extends Part, B extends Part | Upload> {
  readonly params: P["Type"]
  readonly query: Q["Type"]
  readonly headers: H["Type"]
  readonly body: BodyOf<B>
  readonly principal: Principal
  readonly url: string
}

export interface ResponseSpec {
  readonly description: string
  readonly schema?: Part
  readonly contentType?: string
  /** a streamed answer: NDJSON or SSE items of this schema */
  readonly stream?: Streamed
}

type Empty = Schema.Struct<Record<never, never>>

export interface Route<P extends Part = Empty, Q extends Part = Empty, H extends Part = Empty, B extends Part | Upload = Empty, E = never, R = never> {
  readonly method: HTTPMethods
  /** Fastify path syntax: `/v1/entities/:type/:id` */
  readonly url: string
  readonly summary: string
  readonly tags: ReadonlyArray<string>
  /**
   * Roles allowed (admin always is); "public" needs no key. A kind of scoped role (`partner`, `app`,
   * `producer`) lets in any key of that kind, and then the route must say what it may act on, by `authorize`.
   */
  readonly roles: ReadonlyArray<RouteRole> | "public"
  /** A predicate over the key and the decoded request (api/authorization.ts: forPartner, forApp, forTopic). */
  readonly authorize?: Authorize<AuthorizationInput<P["Type"], Q["Type"], H["Type"], DecodedBodyOf<B>>, E, R>
  /** tokens a request takes from its key's rate-limit bucket (default 1) */
  readonly rateCost?: number
  /** which bound on concurrent work it counts against (api/admission.ts); none when absent */
  readonly admission?: AdmissionKind
  readonly params?: P
  readonly query?: Q
  readonly headers?: H
  /** a JSON body's schema, or `upload({...})` for a streamed one */
  readonly body?: B
  /** accepted JSON body media types (default application/json); an upload declares its own */
  readonly consumes?: ReadonlyArray<string>
  readonly responses: Readonly<Record<number, ResponseSpec>>
  readonly handler: (input: RouteInput<P, Q, H, B>) => Effect.Effect<Reply<E, R>, E, R>
}

/** Declares a route; the identity, there for type inference. */
export const route = <P extends Part = Empty, Q extends Part = Empty, H extends Part = Empty, B extends Part | Upload = Empty, E = never, R = never>(
  spec: Route<P, Q, H, B, E, R>
): Route<P, Q, H, B, E, R> => spec

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRoute<R> = Route<any, any, any, any, any, R>

/** Commands and reads are bounded apart, so a flood of reads does not refuse writes nor the reverse. */
export type AdmissionKind = "commands" | "reads"

type Where = typeof RequestPart.Type

// Headers and query strings carry unrelated extra keys (Accept, tracking parameters): those are ignored.
const decodePart = (where: Where, schema: Part | undefined, input: unknown) =>
  schema === undefined
    ? Result.succeed(undefined)
    : Result.mapError(
      validate(schema as Schema.Decoder<unknown>, input, where === "header" || where === "query" ? "ignore" : "error"),
      (issues) => issues.map((issue) => ({ in: where, ...issue }))
    )

/**
 * The headers a route declares that came more than once: Node joins such a header's values with ", ",
 * so `Idempotency-Key: a` and `Idempotency-Key: b` read as the one key `a, b` (stop 32's outside attack).
 */
const repeatedHeaders = (spec: AnyRoute<unknown>, request: FastifyRequest) => {
  const declared = (spec.headers as { readonly fields?: Readonly<Record<string, unknown>> } | undefined)?.fields
  if (declared === undefined) return []
  const seen = new Set<string>()
  const repeated = new Set<string>()
  const raw = request.raw.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (!Object.hasOwn(declared, name)) continue
    if (seen.has(name)) repeated.add(name)
    seen.add(name)
  }
  return [...repeated].map((name) => ({ in: "header" as const, path: [name], message: "sent more than once: send it once" }))
}

/** Every part decoded, or one InvalidRequest naming every failing field of every part. */
const decodeRequest = (spec: AnyRoute<unknown>, request: FastifyRequest) => {
  const parts = [
    decodePart("path", spec.params, request.params),
    decodePart("query", spec.query, request.query),
    decodePart("header", spec.headers, request.headers),
    decodePart("body", isUpload(spec.body) ? undefined : spec.body, request.body)
  ] as const
  const issues = [...repeatedHeaders(spec, request), ...parts.flatMap((part) => Result.isFailure(part) ? part.failure : [])]
  if (issues.length > 0) return Effect.fail(new InvalidRequest({ issues }))
  const [params, query, headers, body] = parts.map((part) => Result.getOrUndefined(part))
  return Effect.succeed({ params, query, headers, body })
}

/** How a route's Effect is run: with the platform's services. */
export type Runner<R> = <A, E>(effect: Effect.Effect<A, E, R>) => Promise<Exit.Exit<A, E>>

/** What every route of an app shares: how to run, the limits, and the signal that the app is closing. */
export interface RouteContext<R> {
  readonly run: Runner<R | ApiKeys>
  readonly rateLimiter: RateLimiter
  /** failed authentications per remote address */
  readonly authFailures: AuthFailures
  readonly admissions: Readonly<Record<AdmissionKind, Admission>>
  /** how slowly an upload's body may arrive before it is answered 408 */
  readonly uploadPace: UploadPace
  /** completes when the app starts closing: streamed answers then end */
  readonly closing: Effect.Effect<void>
}

const sendProblem = (reply: FastifyReply, error: { readonly _tag: string } & Record<string, unknown>, url: string) => {
  const { problem, retryAfter } = toProblem(error, url)
  if (retryAfter !== undefined) reply.header("retry-after", String(retryAfter))
  return reply.status(problem.status).type("application/problem+json").send(JSON.stringify(problem))
}

/** A route that lets in scoped keys without saying what they may act on would let partner a act for b. */
const assertScoped = (spec: AnyRoute<unknown>) => {
  if (spec.roles === "public" || spec.authorize !== undefined) return
  const scoped = spec.roles.filter((role) => scopedKinds.includes(role as never))
  if (scoped.length > 0) throw new Error(`${spec.method} ${spec.url}: roles ${scoped.join(", ")} need an authorize predicate`)
}

/**
 * A read whose client went away before its answer began is interrupted: what it waits for (a turn of
 * the rollups' reader) it waits for no more. A write goes on (its client retries with its
 * Idempotency-Key). Before, 40 metrics queries whose clients had gone kept their places in the line and
 * a light query was answered 503 (stop 24's second outside attack).
 */
const untilClientGone = <A, E, R>(program: Effect.Effect<A, E, R>, reply: FastifyReply) =>
  Effect.raceFirst(
    program,
    Effect.callback<never, ClientGone>((resume) => {
      const gone = () => {
        if (!reply.raw.headersSent) resume(Effect.fail(new ClientGone()))
      }
      if (reply.raw.destroyed) gone()
      reply.raw.once("close", gone)
      return Effect.sync(() => void reply.raw.off("close", gone))
    })
  )

/** The client of a read closed its connection before the answer: nobody to answer. */
class ClientGone extends Schema.TaggedError<ClientGone>()("ClientGone", {}) {}

/** Who the onRequest gate let in, and the admission slot it holds for the request. */
interface Admitted {
  readonly principal: Principal
  release: Release | undefined
  handling: boolean
}

const admitted = new WeakMap<FastifyRequest, Admitted>()

const anonymous: Principal = { id: "anonymous", role: "public" }

/** Whose share of the admission slots a request counts against: a partner's, an app's or a producer's keys together; none for the platform's own roles. */
const tenantOf = (principal: Principal): string | undefined =>
  principal.role !== "public" && scopedKinds.includes(parseRole(principal.role).kind) ? principal.role : undefined

/** Who is calling, checked from the headers alone: nothing of the body has been read yet. */
const identify = (spec: AnyRoute<unknown>, request: FastifyRequest, context: RouteContext<unknown>) =>
  Effect.gen(function*() {
    if (spec.roles === "public") return anonymous
    yield* context.authFailures.check(request.ip)
    const principal = yield* authenticate(request.headers.authorization).pipe(
      Effect.tapErrorTag("Unauthorized", () => context.authFailures.record(request.ip))
    )
    yield* context.rateLimiter.take(principal, spec.rateCost ?? 1)
    yield* authorize(principal, spec.roles)
    return principal as Principal
  })

/** How often a streamed answer checks its caller's key again. */
const keyRecheck = "5 seconds"

/**
 * Fails with Unauthorized once the request's key is no longer good (revoked, or the bootstrap key
 * disabled), checked every `keyRecheck`: a streamed answer may last for days, and before stop 28 one
 * opened with a key revoked since went on delivering every new event. Never, on a public route.
 */
const keyRevoked = (spec: AnyRoute<unknown>, request: FastifyRequest) =>
  spec.roles === "public"
    ? Effect.never
    : Effect.sleep(keyRecheck).pipe(
      // the key store unavailable a moment is not a revocation: asked again next time
      Effect.andThen(authenticate(request.headers.authorization).pipe(Effect.asVoid, Effect.catchTag("ApiKeysError", () => Effect.void))),
      Effect.forever
    )

/** A request that declares a body, not read (yet). */
const bodyPending = (request: FastifyRequest) =>
  !request.raw.complete && (request.headers["transfer-encoding"] !== undefined || Number(request.headers["content-length"] ?? 0) > 0)

/** Refused before its body was read: the answer closes the connection, so the body is never read. */
const refuse = (request: FastifyRequest, reply: FastifyReply, error: { readonly _tag: string } & Record<string, unknown>) => {
  if (bodyPending(request)) reply.header("connection", "close")
  return sendProblem(reply, error, request.url)
}

const mount = <R>(app: FastifyInstance, spec: AnyRoute<R>, context: RouteContext<R>) => {
  const uploads = isUpload(spec.body)
  app.route({
    method: spec.method,
    url: spec.url,
    onRequest: async (request: FastifyRequest, reply: FastifyReply) => {
      const exit = await context.run(identify(spec as AnyRoute<unknown>, request, context as RouteContext<unknown>))
      if (Exit.isFailure(exit)) {
        const failure = Cause.findErrorOption(exit.cause)
        if (Option.isSome(failure)) return refuse(request, reply, failure.value as { _tag: string })
        request.log.error({ cause: Cause.pretty(exit.cause) }, "authentication failed")
        return refuse(request, reply, { _tag: "Internal", detail: "internal error" })
      }
      const state: Admitted = { principal: exit.value, release: undefined, handling: false }
      admitted.set(request, state)
      if (spec.admission === undefined) return
      const slot = await context.admissions[spec.admission].enter(tenantOf(exit.value))
      if (typeof slot !== "function") return refuse(request, reply, slot as { readonly _tag: string })
      state.release = slot
      // Answered before the handler ran (a body too large, too slow, malformed) or the client left while waiting.
      reply.raw.once("close", () => {
        if (!state.handling) slot()
      })
      if (request.raw.socket.destroyed) slot()
    },
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      const state = admitted.get(request)!
      state.handling = true
      const principal = state.principal
      const program = Effect.gen(function*() {
        const input = yield* decodeRequest(spec, request)
        if (spec.authorize !== undefined) yield* check(spec.authorize, { ...input, principal })
        const body = uploads ? yield* openUpload(request.raw, spec.body as Upload, context.uploadPace) : input.body
        const answer = yield* spec.handler({ ...input, body, principal, url: request.url })
        if (!("stream" in answer)) return answer
        const streamed = spec.responses[answer.status]?.stream
        if (streamed === undefined) return yield* Effect.die(new Error(`${spec.url}: status ${answer.status} is not declared as a stream`))
        reply.hijack()
        yield* sendStream({
          response: reply.raw,
          status: answer.status,
          headers: answer.headers ?? {},
          format: negotiate(request.headers.accept),
          spec: streamed,
          stream: answer.stream,
          instance: request.url,
          closing: context.closing,
          revoked: keyRevoked(spec as AnyRoute<unknown>, request),
          onError: (cause) =>
            Cause.findErrorOption(cause).pipe(Option.exists((error) => (error as { readonly _tag?: string })._tag === "Unauthorized"))
              ? Effect.void
              : Effect.sync(() => request.log.error({ cause: Cause.pretty(cause) }, "streamed answer failed"))
        })
        return undefined
      })
      // The slot is given back once the answer is encoded and sent: encoding a big page is part of the work.
      try {
        return await answer(await context.run(spec.admission === "reads" ? untilClientGone(program, reply) : program))
      } finally {
        state.release?.()
      }

      async function answer(exit: Exit.Exit<Reply<unknown, unknown> | undefined, unknown>) {
        // An upload not read to its end: the connection closes after the answer, rather than reading the rest.
        if (uploads && !request.raw.complete) reply.header("connection", "close")
        if (Exit.isSuccess(exit)) {
          if (exit.value === undefined) return reply
          const { status, body, headers } = exit.value as { status: number; body?: unknown; headers?: Record<string, string> }
          const response = spec.responses[status]
          if (headers) reply.headers(headers)
          if (body === undefined) return reply.status(status).send()
          const encoded = response?.schema ? Schema.encodeUnknownSync(response.schema as Schema.Codec<unknown>)(body) : body
          if (response?.contentType) return reply.status(status).type(response.contentType).send(encoded)
          return reply.status(status).send(encoded)
        }
        const failure = Cause.findErrorOption(exit.cause)
        if (Option.isSome(failure)) return sendProblem(reply, failure.value as { _tag: string }, request.url)
        request.log.error({ cause: Cause.pretty(exit.cause) }, "request failed")
        return sendProblem(reply, { _tag: "Internal", detail: "internal error" }, request.url)
      }
    }
  })
}

export const register = <R>(app: FastifyInstance, spec: AnyRoute<R>, context: RouteContext<R>) => {
  assertScoped(spec as AnyRoute<unknown>)
  if (!isUpload(spec.body)) return mount(app, spec, context)
  // An upload route lives in its own encapsulated scope whose only body "parser" reads nothing, so
  // the body stays on the socket for the handler (and the app-wide JSON body limit does not apply).
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined))
    mount(scope, spec, context)
  })
}
