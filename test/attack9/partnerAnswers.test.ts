/**
 * Attack (issue 9, the partner HTTP client): a partner answering in ways no well-behaved server does,
 * from a process of its own over raw TCP (test/attack9/hostilePartnerProcess.ts), against the client
 * the deliverers send with (infra/delivery/partnerHttp.ts). A request that never settles would hold its
 * in-flight slot, its users (the next records of theirs wait behind it) and its chunk (never acked):
 * `timeoutMs` bounds the whole exchange, and a final status, once it came, is the answer.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { PartnerHttp } from "../../domain/delivery/PartnerHttp.ts"
import { layerUndici } from "../../infra/delivery/partnerHttp.ts"
import { hostilePartner } from "./hostilePartner.ts"

const TIMEOUT_MS = 500

/** One request to the partner through the deliverers' client; none when it has not settled within `withinMs`. */
const sendOnce = (url: string, withinMs: number) =>
  Effect.gen(function*() {
    const http = yield* PartnerHttp
    const client = yield* http.client(`${url}/in`, { connections: 1 })
    return yield* client.send({ method: "POST", headers: { "content-type": "application/json" }, body: "{}", timeoutMs: TIMEOUT_MS }).pipe(
      Effect.timeoutOption(`${withinMs} millis`)
    )
  }).pipe(Effect.scoped, Effect.provide(layerUndici))

describe("attack: a partner's answers against the deliverers' HTTP client", () => {
  it.live("a partner sending `102 Processing` over and over cannot hold a request past timeoutMs: it times out", () =>
    Effect.gen(function*() {
      const partner = yield* hostilePartner("processing-forever")
      // twenty times the time limit: the headers' wait should have ended long before
      const answer = yield* sendOnce(partner.url, 20 * TIMEOUT_MS)
      assert.strictEqual(partner.requests(), 1)
      assert.isTrue(Option.isSome(answer), `no answer ${20 * TIMEOUT_MS} ms after a request limited to ${TIMEOUT_MS} ms: the request is held by interim answers`)
      assert.strictEqual(Option.getOrThrow(answer)._tag, "TimedOut")
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("a 2xx whose body trickles a byte at a time settles the request at once (the partner accepted it)", () =>
    Effect.gen(function*() {
      const partner = yield* hostilePartner("trickle-200")
      // the status is known at once; the rest of the body is never needed (a success's body is skipped)
      const answer = yield* sendOnce(partner.url, 20 * TIMEOUT_MS)
      assert.strictEqual(partner.requests(), 1)
      assert.isTrue(Option.isSome(answer), `a 200 answered at once, not settled ${20 * TIMEOUT_MS} ms later: its body comes a byte every 200 ms, each wait under ${TIMEOUT_MS} ms`)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  // each a 200 the partner sent: a 2xx whose connection resets mid-body (the partner accepted it; before
  // the hand-written undici dispatch, Pool.request with its body dumped, this was a 200), and a 200
  // after an unasked-for `100 Continue` (a 1xx is not the final answer)
  for (const behaviour of ["reset-200-mid-body", "continue-then-200"] as const) {
    it.live(`${behaviour}: the answer is the 200`, () =>
      Effect.gen(function*() {
        const partner = yield* hostilePartner(behaviour)
        const answer = yield* sendOnce(partner.url, 20 * TIMEOUT_MS)
        assert.strictEqual(partner.requests(), 1)
        assert.deepStrictEqual(Option.getOrUndefined(answer), { _tag: "Answered", status: 200, retryAfter: undefined }, "a 200 the partner sent")
      }).pipe(Effect.scoped), { timeout: 30_000 })
  }
})
