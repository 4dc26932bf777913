/**
 * The bootstrap admin key (ADMIN_API_KEY) disabled at run time, over HTTP: refused while it is the only
 * way in as admin, then refused itself, while the admin keys it created keep working.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { assertProblem, createKey, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

const disable = (key?: string) => request({ method: "POST", url: "/v1/admin/bootstrap-key/disable", ...(key === undefined ? {} : { key }) })
const state = (key?: string) => request({ method: "GET", url: "/v1/admin/bootstrap-key", ...(key === undefined ? {} : { key }) })

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("the bootstrap admin key", (it) => {
  describe("disabled without a restart", () => {
    it.effect("only once another live admin key exists; then it answers 401, the other admin keys work, and the last of them cannot be revoked", () =>
      Effect.gen(function*() {
        // no other admin key (a service key and a revoked admin key do not count): 409, and it keeps working
        yield* createKey("service")
        const revoked = yield* createKey("admin", "gone")
        assert.strictEqual((yield* request({ method: "DELETE", url: `/v1/admin/keys/${revoked.id}` })).statusCode, 204)
        const refused = assertProblem(yield* disable(), 409, "last-admin-key")
        assert.include(refused.detail ?? "", "admin key")
        assert.deepStrictEqual((yield* state()).json(), { disabled: false })

        const operator = yield* createKey("admin", "operator")
        const disabled = yield* disable()
        assert.strictEqual(disabled.statusCode, 200, disabled.body)
        const { disabledAt } = disabled.json() as { disabled: boolean; disabledAt: string }
        assert.deepStrictEqual(disabled.json(), { disabled: true, disabledAt })

        // the bootstrap key is refused everywhere from now on; the operator's key is not
        const bootstrap = assertProblem(yield* request({ method: "GET", url: "/v1/admin/keys" }), 401, "unauthorized")
        assert.include(bootstrap.detail ?? "", "ADMIN_API_KEY")
        assertProblem(yield* request({ method: "PUT", url: "/v1/entities/advertiser/1", body: { name: "x" } }), 401, "unauthorized")
        assert.strictEqual((yield* request({ method: "GET", url: "/v1/admin/keys", key: operator.secret })).statusCode, 200)
        // again: the first answer
        assert.deepStrictEqual((yield* disable(operator.secret)).json(), { disabled: true, disabledAt })
        assert.deepStrictEqual((yield* state(operator.secret)).json(), { disabled: true, disabledAt })

        // the last admin key stays; with a second one, the first may go
        assertProblem(yield* request({ method: "DELETE", url: `/v1/admin/keys/${operator.id}`, key: operator.secret }), 409, "last-admin-key")
        const created = yield* request({ method: "POST", url: "/v1/admin/keys", key: operator.secret, body: { name: "second", role: "admin" } })
        assert.strictEqual(created.statusCode, 201, created.body)
        const second = { id: (created.json() as { key: { id: string } }).key.id, secret: (created.json() as { secret: string }).secret }
        assert.strictEqual((yield* request({ method: "DELETE", url: `/v1/admin/keys/${operator.id}`, key: second.secret })).statusCode, 204)
        assertProblem(yield* request({ method: "DELETE", url: `/v1/admin/keys/${second.id}`, key: second.secret }), 409, "last-admin-key")
      }))
  })
})
