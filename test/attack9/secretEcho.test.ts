/**
 * Attack (issue 9, secrets): secret headers are "never in an API answer", and a dead letter keeps the
 * partner's answer with their values cut out, since "a partner answering 401 often echoes the header
 * it refused". The cut matches the values byte for byte only: a partner echoing them JSON-encoded as
 * PHP's json_encode does by default (`/` written `\/`) hands a base64 token to every auditor key.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { call } from "../fixtures/platformProcess.ts"
import { hostilePartner } from "./hostilePartner.ts"
import { startAttackPlatform } from "./platform.ts"

/** A base64 credential, as most are: `/` and `+` in it. */
const TOKEN = "c2stbGl2ZS/hN2Y5+Q3dlcnR5/dWlvcA=="

interface DeadLetters {
  readonly items: ReadonlyArray<{ readonly attempts: ReadonlyArray<{ readonly status?: number; readonly body?: string }> }>
}

/** A destination `echo` sending `token` as its secret Authorization header to `behaviour`'s partner, which refuses and echoes it: the first dead letter's answer body as an auditor reads it. */
const echoedIn = (behaviour: string, name: string, segment: string, token: string) =>
  Effect.gen(function*() {
    const partner = yield* hostilePartner(behaviour)
    const { platform, api, ingest } = yield* startAttackPlatform(name)
    yield* ingest(segment, [[`${segment}-user`, "add"]], 1)
    const created = yield* api("PUT", "/v1/entities/destination/echo", {
      partnerId: "acme", url: `${partner.url}/in`, format: "single", ratePerSecond: 10, maxAttempts: 1, segmentIds: [segment],
      secretHeaders: { Authorization: `Bearer ${token}` }
    })
    assert.strictEqual(created.status, 201, created.text)
    const auditor = ((yield* api("POST", "/v1/admin/keys", { name: "auditor", role: "auditor" })).body as { secret: string }).secret
    const letters = yield* eventually(
      call(platform().base, "GET", "/v1/destinations/echo/dead-letters", { key: auditor }).pipe(Effect.map((a) => a.body as DeadLetters)),
      (body) => (body.items?.length ?? 0) > 0,
      "60 seconds")
    return letters.items[0]!.attempts[0]!.body ?? ""
  })

describe("attack: a partner echoing the secret headers it refused", () => {
  it.live("a secret echoed JSON-encoded with escaped slashes is cut out of the dead letter", () =>
    Effect.gen(function*() {
      const echoed = yield* echoedIn("echo-401-php-json", "attack9-secret-echo", "921", TOKEN)
      // what anyone reading JSON gets back from the echo
      assert.notInclude(echoed.replaceAll("\\/", "/"), TOKEN, `the secret is readable in the dead letter: ${echoed}`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })

  it.live("the secret is cut out before the answer is cut to 2,048 characters: no part of a credential across the cut is kept", () =>
    Effect.gen(function*() {
      const token = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
      const echoed = yield* echoedIn("echo-401-across-cut", "attack9-secret-cut", "922", token)
      // the partner put the credential's first 16 characters before the cut
      assert.notInclude(echoed, token.slice(0, 16), `the start of the secret is in the dead letter: …${echoed.slice(-40)}`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })
})
