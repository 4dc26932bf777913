/**
 * PartnerHttp with undici: a Pool per destination (its own kept-alive connections, as many as its
 * in-flight limit), closed with the deliverer's Scope. A request's time limit bounds the whole
 * exchange, from its dispatch to its answer's end: interim (1xx) answers or a body trickling in never
 * extend it. One sweep per client, running only while requests are out, ends those past their
 * deadline (a timer per request cost a fast destination more than the rest of the exchange). The
 * answer goes to a handler of our own (`Pool.dispatch`), not through `Pool.request`'s promise and body
 * stream: a final status is the answer (a 2xx settles the request at once: the partner accepted it,
 * whatever befalls its body), a success's body is skipped, another's kept up to `maxAnswerRead` (the
 * deliverer redacts it, then cuts it), and a body longer than that (or than `maxSkipped` for a
 * success) closes the connection instead of being read to its end. Header values are never logged here.
 *
 * Every connection's name lookup is checked (`guardedLookup`): a host name that resolves to a cloud
 * metadata or unspecified address is refused as the URL check refuses that address written out, also
 * when the name resolved elsewhere when the destination was saved (DNS rebinding).
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns"
import type { LookupFunction, Socket } from "node:net"
import { Effect, Layer } from "effect"
import { buildConnector, Pool } from "undici"
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

/** How often a client with requests out looks for those past their deadline. */
const sweepEveryMs = 100

/** A request out: its deadline, and how to end it (answering TimedOut unless it was answered). */
interface Exchange {
  readonly deadline: number
  readonly expire: () => void
}

/**
 * The answer of one exchange, handed to `done` once: the final status and the start of the body, or
 * what failed. `finished` is called once the exchange is over (its end, its error, or `expire`).
 */
const answerHandler = (done: (answer: PartnerAnswer) => void, finished: () => void) => {
  let status = 0
  let retryAfter: string | undefined = undefined
  let body = ""
  let skipped = 0
  let settled = false
  let over = false
  let controller: Dispatcher.DispatchController | undefined
  const ok = () => status >= 200 && status < 300
  const settle = (answer: PartnerAnswer) => {
    if (settled) return
    settled = true
    done(answer)
  }
  /** The final status came: it is the answer, with the body so far. */
  const answered = () => settle({ _tag: "Answered", status, retryAfter, ...(ok() || body === "" ? {} : { body: body.slice(0, maxAnswerRead) }) })
  const finish = () => {
    if (over) return
    over = true
    finished()
  }
  /** Ends the exchange (deadline passed, or its body cut): answered if its final status came, else timed out. */
  const end = (reason: Error) => {
    if (status === 0) settle({ _tag: "TimedOut" })
    else answered()
    finish()
    controller?.abort(reason)
  }
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart: (started) => {
      controller = started
      if (over) started.abort(new Error("request past its deadline"))
    },
    onResponseStart: (_controller, statusCode, headers) => {
      if (statusCode < 200) return // informational: the answer follows
      status = statusCode
      const value = headers["retry-after"]
      retryAfter = Array.isArray(value) ? value[0] : value
      if (ok()) answered()
    },
    onResponseData: (_controller, chunk) => {
      if (ok()) skipped += chunk.length
      else body += chunk.toString("utf8")
      if (body.length >= maxAnswerRead || skipped > maxSkipped) end(new Error("answer body cut"))
    },
    onResponseEnd: () => {
      answered()
      finish()
    },
    onResponseError: (_controller, error) => {
      finish()
      if (status !== 0) return answered() // a final status came: the body's loss does not change it
      settle(isTimeout(error) ? { _tag: "TimedOut" } : { _tag: "ConnectionFailed", message: describe(error) })
    }
  }
  return { handler, expire: () => end(new Error("request past its deadline")) }
}

/**
 * Drops `100 Continue` answers at the start of a response on `socket`. undici takes one it did not ask
 * for (it never sends `Expect`) for a broken connection, failing a request the partner may go on to
 * accept; RFC 9110 15.2 has a client parse any 1xx it did not expect. A request written marks the
 * start of its response (one request at a time per connection).
 */
const dropContinues = (socket: Socket) => {
  const push = socket.push.bind(socket)
  const write = socket.write.bind(socket) as (...args: Array<unknown>) => boolean
  const continues = ["HTTP/1.1 100 ", "HTTP/1.1 100\r", "HTTP/1.0 100 ", "HTTP/1.0 100\r"]
  let atStart = false
  let held: Buffer | undefined
  socket.write = ((...args: Array<unknown>) => {
    atStart = true
    return write(...args)
  }) as typeof socket.write
  socket.push = (chunk: Buffer | null, encoding?: BufferEncoding) => {
    if (!atStart || chunk === null) {
      if (held !== undefined) push(held)
      held = undefined
      return push(chunk, encoding)
    }
    let data = held === undefined ? chunk : Buffer.concat([held, chunk])
    held = undefined
    for (;;) {
      const start = data.subarray(0, 13).toString("latin1")
      if (!continues.some((line) => data.length < 13 ? line.startsWith(start) : start === line)) {
        atStart = false
        return push(data)
      }
      const end = data.indexOf("\r\n\r\n")
      if (data.length < 13 || end < 0) {
        if (data.length > 8_192) { // no interim answer is that long: let the parser judge it
          atStart = false
          return push(data)
        }
        held = data
        return true
      }
      data = data.subarray(end + 4)
      if (data.length === 0) return true
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
    const connector = buildConnector({ lookup } as buildConnector.BuildOptions)
    const connect: buildConnector.connector = (options, callback) =>
      connector(options, (error, socket) => {
        if (error === null && socket) dropContinues(socket as Socket)
        callback(error, socket as never)
      })
    const pool = yield* Effect.acquireRelease(
      // an idle connection is kept 30 s at most, whatever the partner's `Keep-Alive: timeout=` asks (undici
      // would honour up to 600 s): idle ones hold file descriptors the socket budget does not count
      Effect.sync(() => new Pool(target.origin, { connections, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 30_000, pipelining: 1, connect })),
      (pool) => Effect.promise(() => pool.destroy().catch(() => undefined))
    )
    const out = new Set<Exchange>()
    let sweeping: ReturnType<typeof setInterval> | undefined
    const sweep = () => {
      const now = Date.now()
      for (const exchange of out) if (exchange.deadline <= now) exchange.expire()
      if (out.size === 0) {
        clearInterval(sweeping)
        sweeping = undefined
      }
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(sweeping)))
    const dispatch = (request: PartnerRequest, answered: (answer: PartnerAnswer) => void) => {
      const { handler, expire } = answerHandler(answered, () => out.delete(exchange))
      const exchange: Exchange = { deadline: Date.now() + request.timeoutMs, expire }
      out.add(exchange)
      if (sweeping === undefined) sweeping = setInterval(sweep, sweepEveryMs).unref()
      try {
        pool.dispatch({ path, method: request.method, headers: request.headers, body: request.body }, handler)
      } catch (error) {
        out.delete(exchange)
        const failed: PartnerAnswer = { _tag: "ConnectionFailed", message: describe(error) }
        queueMicrotask(() => answered(failed))
      }
    }
    const send = (request: PartnerRequest): Effect.Effect<PartnerAnswer> =>
      Effect.callback((resume) => dispatch(request, (answer) => resume(Effect.succeed(answer))))
    return { send, dispatch } satisfies PartnerClient
  })

/** With `resolve` for names (the system's resolver by default), guarded. */
export const layerResolving = (resolve?: LookupFunction) => Layer.succeed(PartnerHttp, PartnerHttp.of({ client: client(guardedLookup(resolve)) }))

export const layerUndici = layerResolving()
