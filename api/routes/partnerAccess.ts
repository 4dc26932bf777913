/**
 * What a partner's DELETE ends besides its entity: its FTP/SFTP login (PartnerCredentials) and its
 * `partner:<id>` API keys, dropped once the delete is accepted. Before stop 31 (found by an outside
 * attack) both outlived it: a partner created again under the same id, for another company, took the old
 * password and keys with it, so the previous owner could still feed it and read its jobs. (A process that
 * dies between the delete and the drop leaves them: the drop is logged when it fails, like every
 * `deleting` hook's; delete the keys and set the credentials again then.)
 */
import { type Context, Effect } from "effect"
import { ApiKeys } from "../../domain/ApiKeys.ts"
import { partner } from "../../domain/entities/partner.ts"
import { PartnerCredentials } from "../../domain/ingest/PartnerCredentials.ts"
import type { WriteOnlyFields } from "./entities.ts"

/** Drops the partner's login and revokes its keys. */
const endAccess = (id: string) =>
  Effect.gen(function*() {
    yield* PartnerCredentials.use((credentials) => credentials.remove(id))
    const keys = yield* ApiKeys
    for (const key of yield* keys.list) if (key.role === `partner:${id}`) yield* keys.revoke(key.id)
  })

/** `services`: what the drop needs, given here so that the partner's hook needs nothing of its route. */
export const partnerWriteOnly = (services: Context.Context<ApiKeys | PartnerCredentials>): WriteOnlyFields<never, never> => ({
  putBody: partner.fields,
  names: [],
  store: () => Effect.succeed(undefined),
  deleting: (id) => Effect.succeed(endAccess(id).pipe(Effect.provideContext(services), Effect.orDie))
})
