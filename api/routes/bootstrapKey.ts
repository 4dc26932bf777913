/**
 * The bootstrap admin key's lifecycle (admin only): ADMIN_API_KEY lets the operator in to create the
 * real keys; once another admin key exists it can be disabled, without a restart, for every process on
 * this key store and across restarts. Never leaves the platform without an admin key: disabling needs
 * another live admin key (409 otherwise), and the last one cannot be revoked meanwhile.
 */
import { Effect, Option, Schema } from "effect"
import { ApiKeys } from "../../domain/ApiKeys.ts"
import { problemResponse } from "../problems.ts"
import { route } from "../route.ts"

const BootstrapKey = Schema.Struct({
  disabled: Schema.Boolean,
  /** when it was disabled */
  disabledAt: Schema.optionalKey(Schema.String)
}).annotate({ identifier: "BootstrapKey" })

const view = (disabledAt: Option.Option<string>) =>
  Option.match(disabledAt, { onNone: () => ({ disabled: false }), onSome: (at) => ({ disabled: true, disabledAt: at }) })

export const bootstrapKeyRoutes = [
  route({
    method: "GET", url: "/v1/admin/bootstrap-key", tags: ["admin"], roles: [],
    summary: "Whether the bootstrap admin key (ADMIN_API_KEY) is disabled",
    responses: { 200: { description: "its state", schema: BootstrapKey }, 401: problemResponse("no key"), 403: problemResponse("not admin") },
    handler: () => Effect.map(ApiKeys.use((keys) => keys.bootstrap.disabledAt), (disabledAt) => ({ status: 200, body: view(disabledAt) }))
  }),
  route({
    method: "POST", url: "/v1/admin/bootstrap-key/disable", tags: ["admin"], roles: [],
    summary: "Disable the bootstrap admin key (ADMIN_API_KEY) for good, on every process, without a restart; needs another live admin key. Repeating it answers the first time",
    responses: {
      200: { description: "disabled: requests with it answer 401 from now on", schema: BootstrapKey },
      401: problemResponse("no key"),
      403: problemResponse("not admin"),
      409: problemResponse("no other live admin key: create one first")
    },
    handler: () => Effect.map(ApiKeys.use((keys) => keys.bootstrap.disable), (at) => ({ status: 200, body: view(Option.some(at)) }))
  })
]
