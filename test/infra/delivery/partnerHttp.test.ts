/**
 * The partner HTTP client's name lookup: a host name that resolves to a cloud metadata or unspecified
 * address is refused when connecting (the destination's URL check sees only the name), before any
 * byte is sent; other addresses connect. Against real sockets and a real HTTP server; the resolver that
 * answers a metadata address for a name is a function here (this machine's DNS answers no such name).
 */
import { assert, describe, it } from "@effect/vitest"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { connect, type LookupFunction } from "node:net"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { maxAnswerRead } from "../../../domain/delivery/DeadLetter.ts"
import { PartnerHttp } from "../../../domain/delivery/PartnerHttp.ts"
import { guardedLookup, layerResolving, layerUndici } from "../../../infra/delivery/partnerHttp.ts"

/** A resolver answering `address` for every name, as a DNS server under someone else's control may. */
const resolvingTo = (address: string, family: number): LookupFunction => (_hostname, options, callback) =>
  setImmediate(() => (options.all === true ? callback(null, [{ address, family }]) : callback(null, address, family)))

/** Connects to `port` on `hostname` through `lookup`: the error's message, or "connected". */
const tryConnect = (lookup: LookupFunction, hostname: string, port: number) =>
  Effect.callback<string>((resume) => {
    const socket = connect({ host: hostname, port, lookup })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed("connected"))
    })
    socket.once("error", (error) => resume(Effect.succeed(error.message)))
  })

const listening = Effect.acquireRelease(
  Effect.callback<ReturnType<typeof createServer>>((resume) => {
    const server = createServer((_, response) => response.end("ok"))
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.sync(() => server.close())
)

describe("the partner client's name lookup", () => {
  it.effect("refuses a name resolving to a metadata or unspecified address, and connects to others", () =>
    Effect.gen(function*() {
      const server = yield* listening
      const port = (server.address() as AddressInfo).port
      // IPv4-mapped answers also as getaddrinfo writes them, dotted (a dual-stack socket reaches the IPv4 address behind)
      const forbidden = [["169.254.169.254", 4], ["fe80::1", 6], ["0.0.0.0", 4], ["::ffff:a9fe:a9fe", 6], ["::ffff:169.254.169.254", 6], ["::ffff:0.0.0.0", 6], ["fd00:ec2::254", 6], ["100.100.100.200", 4]] as const
      for (const [address, family] of forbidden) {
        const outcome = yield* tryConnect(guardedLookup(resolvingTo(address, family)), "partner.example", port)
        assert.include(outcome, `partner.example resolves to ${address}`, address)
        assert.include(outcome, "not a partner's address")
      }
      // the same guard over a resolver answering a private address lets the connection through, mapped too
      assert.strictEqual(yield* tryConnect(guardedLookup(resolvingTo("127.0.0.1", 4)), "partner.example", port), "connected")
      assert.strictEqual(yield* tryConnect(guardedLookup(resolvingTo("::ffff:127.0.0.1", 6)), "partner.example", port), "connected")
    }).pipe(Effect.scoped))

  it.effect("is what the client connects with: a real name resolved by the system reaches the partner", () =>
    Effect.gen(function*() {
      const server = yield* listening
      const port = (server.address() as AddressInfo).port
      const http = yield* PartnerHttp
      const client = yield* http.client(`http://localhost:${port}/in`, { connections: 1 })
      const answer = yield* client.send({ method: "POST", headers: { "content-type": "application/json" }, body: "{}", timeoutMs: 5_000 })
      assert.deepStrictEqual(answer, { _tag: "Answered", status: 200, retryAfter: undefined })
    }).pipe(Effect.scoped, Effect.provide(layerUndici)))

  it.effect("keeps the start of a refusal's body and its Retry-After; an answer body that never ends is cut, not read to its end", () =>
    Effect.gen(function*() {
      const server = yield* listening
      server.removeAllListeners("request")
      server.on("request", (request: IncomingMessage, response: ServerResponse) => {
        // a body that never ends: the client must settle without it
        const endless = () => void setImmediate(() => response.write("x".repeat(16_384), endless))
        if (request.url === "/busy") return response.writeHead(503, { "retry-after": "7" }).end("come back later")
        response.writeHead(request.url === "/endless-refusal" ? 400 : 200)
        endless()
      })
      const port = (server.address() as AddressInfo).port
      const http = yield* PartnerHttp
      const send = (path: string) =>
        Effect.flatMap(http.client(`http://127.0.0.1:${port}${path}`, { connections: 1 }), (client) => client.send({ method: "POST", headers: {}, body: "{}", timeoutMs: 5_000 }))
      assert.deepStrictEqual(yield* send("/busy"), { _tag: "Answered", status: 503, retryAfter: "7", body: "come back later" })
      const refusal = yield* send("/endless-refusal")
      assert.deepStrictEqual({ ...refusal, body: (refusal as { body: string }).body.length }, { _tag: "Answered", status: 400, retryAfter: undefined, body: maxAnswerRead })
      assert.deepStrictEqual(yield* send("/endless-success"), { _tag: "Answered", status: 200, retryAfter: undefined })
    }).pipe(Effect.scoped, Effect.provide(layerUndici)))

  it.effect("fails a request to a name resolving to the metadata address as a connection failure naming it, sending nothing", () =>
    Effect.gen(function*() {
      let received = 0
      const server = yield* listening
      server.on("request", () => received++)
      const port = (server.address() as AddressInfo).port
      const http = yield* PartnerHttp
      const client = yield* http.client(`http://partner.example:${port}/in`, { connections: 1 })
      const answer = yield* client.send({ method: "POST", headers: {}, body: "{}", timeoutMs: 5_000 })
      assert.strictEqual(answer._tag, "ConnectionFailed")
      assert.include((answer as { message: string }).message, "partner.example resolves to 169.254.169.254, a link-local address (cloud metadata)")
      assert.strictEqual(received, 0)
    }).pipe(Effect.scoped, Effect.provide(layerResolving(resolvingTo("169.254.169.254", 4)))))
})
