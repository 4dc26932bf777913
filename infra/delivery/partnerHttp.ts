/**
 * PartnerHttp with undici: a Pool per destination (its own kept-alive connections, as many as its
 * in-flight limit), closed with the deliverer's Scope. A request's time limit bounds the wait for the
 * answer's headers and then each wait for its body (undici's own coarse timers: an AbortSignal with
 * a timer of its own per request cost a fast destination more than the rest of the exchange); the
 * answer body is read only when it is not a success, and cut to `maxAnswerBody`. Header values are
 * never logged here.
 *
 * Every connection's name lookup is checked (`guardedLookup`): a host name that resolves to a cloud
 * metadata or unspecified address is refused as the URL check refuses that address written out, also
 * when the name resolved elsewhere when the destination was saved (DNS rebinding).
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns"
import type { LookupFunction } from "node:net"
import { Effect, Layer } from "effect"
import { Pool } from "undici"
import { forbiddenHost } from "../../domain/entities/destination.ts"
import { maxAnswerBody } from "../../domain/delivery/DeadLetter.ts"
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

/** The answer body up to `maxAnswerBody` characters; the rest is not read (however large the partner made it). */
const cutBody = async (body: AsyncIterable<Buffer>): Promise<string> => {
  let text = ""
  for await (const part of body) {
    text += part.toString("utf8")
    if (text.length >= maxAnswerBody) break // leaving the loop destroys the stream
  }
  return text.slice(0, maxAnswerBody)
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
      Effect.promise(async (): Promise<PartnerAnswer> => {
        try {
          const answer = await pool.request({
            path,
            method: request.method,
            headers: request.headers,
            body: request.body,
            headersTimeout: request.timeoutMs,
            bodyTimeout: request.timeoutMs
          })
          const retryAfter = answer.headers["retry-after"]
          const ok = answer.statusCode >= 200 && answer.statusCode < 300
          let body: string | undefined = undefined
          if (ok) await answer.body.dump()
          else body = await cutBody(answer.body)
          return {
            _tag: "Answered",
            status: answer.statusCode,
            retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
            ...(body === undefined || body === "" ? {} : { body })
          }
        } catch (error) {
          return isTimeout(error) ? { _tag: "TimedOut" } : { _tag: "ConnectionFailed", message: describe(error) }
        }
      })
    return { send } satisfies PartnerClient
  })

/** With `resolve` for names (the system's resolver by default), guarded. */
export const layerResolving = (resolve?: LookupFunction) => Layer.succeed(PartnerHttp, PartnerHttp.of({ client: client(guardedLookup(resolve)) }))

export const layerUndici = layerResolving()
