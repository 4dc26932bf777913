/**
 * PartnerHttp with undici: a Pool per destination (its own kept-alive connections, as many as its
 * in-flight limit), closed with the deliverer's Scope. A request's time limit bounds the wait for the
 * answer's headers and then each wait for its body (undici's own coarse timers: an AbortSignal with
 * a timer of its own per request cost a fast destination more than the rest of the exchange). The
 * answer goes to a handler of our own (`Pool.dispatch`), not through `Pool.request`'s promise and body
 * stream: a success's body is skipped, another's kept up to `maxAnswerRead`, and a body longer than
 * that (or than `maxSkipped` for a success) closes the connection instead of being read to its end.
 * Header values are never logged here.
 *
 * Every connection's name lookup is checked (`guardedLookup`): a host name that resolves to a cloud
 * metadata or unspecified address is refused as the URL check refuses that address written out, also
 * when the name resolved elsewhere when the destination was saved (DNS rebinding).
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns"
import type { LookupFunction } from "node:net"
import { Effect, Layer } from "effect"
import { Pool } from "undici"
import type { Dispatcher } from "undici"
import { forbiddenHost } from "../../domain/entities/destination.ts"
import { maxAnswerRead } from "../../domain/delivery/DeadLetter.ts"
import { type PartnerAnswer, type PartnerClient, PartnerHttp, type PartnerRequest } from "../../domain/delivery/PartnerHttp.ts"

const isTimeout = (error: unknown): boolean => {
  const name = (error as { name?: string; code?: string })?.name
  const code = (error as { code?: string })?.code
  return name === "TimeoutError" || code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT"
}

const describe = (error: unknown): string => {
  const e = error as { code?: string; message?: string; cause?: { code?: string; message?: string } }
  return [e.code ?? e.cause?.code, e.message ?? e.cause?.message].filter((part) => part !== undefined).join(": ") || String(error)
}

/** A success's body is read and dropped up to this many bytes; past that its connection is closed. */
const maxSkipped = 128 * 1024

/** The answer of one exchange, handed to `done` once: the status and the start of the body, or what failed. */
const answerHandler = (done: (answer: PartnerAnswer) => void): Dispatcher.DispatchHandler => {
  let status = 0
  let retryAfter: string | undefined = undefined
  let body = ""
  let skipped = 0
  let settled = false
  const answered = () => {
    if (settled) return
    settled = true
    const ok = status >= 200 && status < 300
    done({ _tag: "Answered", status, retryAfter, ...(ok || body === "" ? {} : { body: body.slice(0, maxAnswerRead) }) })
  }
  return {
    onRequestStart: () => undefined,
    onResponseStart: (_controller, statusCode, headers) => {
      if (statusCode < 200) return // informational: the answer follows
      status = statusCode
      const value = headers["retry-after"]
      retryAfter = Array.isArray(value) ? value[0] : value
    },
    onResponseData: (controller, chunk) => {
      if (status >= 200 && status < 300) skipped += chunk.length
      else body += chunk.toString("utf8")
      if (body.length >= maxAnswerRead || skipped > maxSkipped) {
        answered()
        controller.abort(new Error("answer body cut"))
      }
    },
    onResponseEnd: answered,
    onResponseError: (_controller, error) => {
      if (settled) return // the body was cut: already answered
      settled = true
      done(isTimeout(error) ? { _tag: "TimedOut" } : { _tag: "ConnectionFailed", message: describe(error) })
    }
  }
}

/**
 * `resolve` (dns.lookup) refusing the addresses no partner lives on (domain/entities/destination.ts):
 * the connection fails with the reason, which the request's attempts and dead letter show.
 */
export const guardedLookup = (resolve: LookupFunction = dnsLookup as LookupFunction): LookupFunction => (hostname, options, callback) =>
  resolve(hostname, options, (error, address, family) => {
    if (error !== null) return callback(error, address, family)
    const addresses: ReadonlyArray<LookupAddress> = typeof address === "string" ? [{ address, family: family ?? 4 }] : address
    for (const { address: ip } of addresses) {
      const forbidden = forbiddenHost(ip)
      if (forbidden !== undefined) {
        const refused = Object.assign(new Error(`${hostname} resolves to ${ip}, ${forbidden}: not a partner's address`), { code: "EADDRNOTALLOWED" })
        return callback(refused, address, family)
      }
    }
    callback(null, address, family)
  })

const client = (lookup: LookupFunction) => (url: string, { connections }: { readonly connections: number }) =>
  Effect.gen(function*() {
    const target = new URL(url)
    const path = `${target.pathname}${target.search}`
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => new Pool(target.origin, { connections, keepAliveTimeout: 30_000, pipelining: 1, connect: { lookup } })),
      (pool) => Effect.promise(() => pool.destroy().catch(() => undefined))
    )
    const send = (request: PartnerRequest): Effect.Effect<PartnerAnswer> =>
      Effect.callback((resume) => {
        try {
          pool.dispatch({
            path,
            method: request.method,
            headers: request.headers,
            body: request.body,
            headersTimeout: request.timeoutMs,
            bodyTimeout: request.timeoutMs
          }, answerHandler((answer) => resume(Effect.succeed(answer))))
        } catch (error) {
          resume(Effect.succeed({ _tag: "ConnectionFailed", message: describe(error) }))
        }
      })
    return { send } satisfies PartnerClient
  })

/** With `resolve` for names (the system's resolver by default), guarded. */
export const layerResolving = (resolve?: LookupFunction) => Layer.succeed(PartnerHttp, PartnerHttp.of({ client: client(guardedLookup(resolve)) }))

export const layerUndici = layerResolving()
