/**
 * A route is data: method, path, roles, the schemas of each request part and response, and a
 * handler returning an Effect. `register` mounts it on Fastify (decoding every part with
 * effect/Schema, encoding the response with its schema so nothing undeclared leaks), and
 * `openApi` (api/openapi.ts) documents it from the same schemas.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from "fastify"
import { Cause, Effect, Exit, Option, Result, Schema } from "effect"
import type { ApiKeys, Role } from "../domain/ApiKeys.ts"
import { validate } from "../domain/validation.ts"
import { authenticate, authorize, type Principal } from "./auth.ts"
import { InvalidRequest, type RequestPart, toProblem } from "./problems.ts"

type Part = Schema.Top

export interface Reply {
  readonly status: number
  readonly body?: unknown
  readonly headers?: Readonly<Record<string, string>>
}

export interface RouteInput<P extends Part, Q extends Part, H extends Part, B extends Part> {
  readonly params: P["Type"]
  readonly query: Q["Type"]
  readonly headers: H["Type"]
  readonly body: B["Type"]
  readonly principal: Principal
  readonly url: string
}

type Empty = Schema.Struct<Record<never, never>>

export interface Route<P extends Part = Empty, Q extends Part = Empty, H extends Part = Empty, B extends Part = Empty, E = never, R = never> {
  readonly method: HTTPMethods
  /** Fastify path syntax: `/v1/entities/:type/:id` */
  readonly url: string
  readonly summary: string
  readonly tags: ReadonlyArray<string>
  /** roles allowed (admin always is); "public" needs no key */
  readonly roles: ReadonlyArray<Role> | "public"
  readonly params?: P
  readonly query?: Q
  readonly headers?: H
  readonly body?: B
  /** accepted body media types (default application/json) */
  readonly consumes?: ReadonlyArray<string>
  readonly responses: Readonly<Record<number, { readonly description: string; readonly schema?: Part; readonly contentType?: string }>>
  readonly handler: (input: RouteInput<P, Q, H, B>) => Effect.Effect<Reply, E, R>
}

/** Declares a route; the identity, there for type inference. */
export const route = <P extends Part = Empty, Q extends Part = Empty, H extends Part = Empty, B extends Part = Empty, E = never, R = never>(
  spec: Route<P, Q, H, B, E, R>
): Route<P, Q, H, B, E, R> => spec

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRoute<R> = Route<any, any, any, any, any, R>

type Where = typeof RequestPart.Type

// Headers and query strings carry unrelated extra keys (Accept, tracking parameters): those are ignored.
const decodePart = (where: Where, schema: Part | undefined, input: unknown) =>
  schema === undefined
    ? Result.succeed(undefined)
    : Result.mapError(
      validate(schema as Schema.Decoder<unknown>, input, where === "header" || where === "query" ? "ignore" : "error"),
      (issues) => issues.map((issue) => ({ in: where, ...issue }))
    )

/** Every part decoded, or one InvalidRequest naming every failing field of every part. */
const decodeRequest = (spec: AnyRoute<unknown>, request: FastifyRequest) => {
  const parts = [
    decodePart("path", spec.params, request.params),
    decodePart("query", spec.query, request.query),
    decodePart("header", spec.headers, request.headers),
    decodePart("body", spec.body, request.body)
  ] as const
  const issues = parts.flatMap((part) => Result.isFailure(part) ? part.failure : [])
  if (issues.length > 0) return Effect.fail(new InvalidRequest({ issues }))
  const [params, query, headers, body] = parts.map((part) => Result.getOrUndefined(part))
  return Effect.succeed({ params, query, headers, body })
}

/** How a route's Effect is run: with the platform's services. */
export type Runner<R> = <A, E>(effect: Effect.Effect<A, E, R>) => Promise<Exit.Exit<A, E>>

const sendProblem = (reply: FastifyReply, error: { readonly _tag: string } & Record<string, unknown>, url: string) => {
  const { problem, retryAfter } = toProblem(error, url)
  if (retryAfter !== undefined) reply.header("retry-after", String(retryAfter))
  return reply.status(problem.status).type("application/problem+json").send(JSON.stringify(problem))
}

export const register = <R>(app: FastifyInstance, spec: AnyRoute<R>, run: Runner<R | ApiKeys>) => {
  app.route({
    method: spec.method,
    url: spec.url,
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      const program = Effect.gen(function*() {
        const principal = spec.roles === "public" ? { id: "anonymous", role: "public" } : yield* authenticate(request.headers.authorization)
        if (spec.roles !== "public") yield* authorize(principal, spec.roles)
        const input = yield* decodeRequest(spec, request)
        return yield* spec.handler({ ...input, principal, url: request.url })
      })
      const exit = await run(program)
      if (Exit.isSuccess(exit)) {
        const { status, body, headers } = exit.value
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
  })
}
