/**
 * A destination's secret headers through its entity routes (`PUT`/`PATCH /v1/entities/destination/{id}`,
 * field `secretHeaders`, write-only): split off the body, encrypted into DestinationSecrets BEFORE the
 * command — so the deliverer never sees a new destination without its credentials — and the entity
 * is then told their names (`RecordSecretsChange`). Should the entity refuse the command after that
 * (a stale If-Match, invalid fields), the secrets are put back as they were: a refused request changes
 * nothing. Should its outcome be unknown (a timeout), they stay: sending the request again converges.
 * The PUT also checks that the partner exists, to answer 400 naming `partnerId` (the entity checks it
 * again, atomically, at its append).
 *
 * Secrets follow the URL's origin: a PUT or PATCH moving the URL to another scheme, host or port must
 * give `secretHeaders` anew (422 otherwise), or a key that may edit destinations could send a
 * partner's credentials to a server of its own. And they are stored with the origin they were given
 * for, which is the only one the deliverer sends them to (domain/delivery/DestinationSecrets.ts), so no
 * interleaving of requests (a refused one's undo after another's move) sends them anywhere else. And what belongs to a destination outside its entity
 * (secrets, dead letters on DLQ, chunks on DELIVER) goes with its delete: dropped once the delete is
 * accepted (the secrets written before it), and again before a PUT creates a destination under a
 * deleted one's id, so a crash between the delete and the drop never hands them to the next
 * destination of that id (maybe another partner's).
 */
import { EntityNotFound } from "../../domain/entity.ts"
import { StrictRecord } from "../../domain/strictRecord.ts"
import { Effect, Option, Redacted, Result, Schema } from "effect"
import { DeadLetterQueue } from "../../domain/delivery/DeadLetterQueue.ts"
import { DeliveryBacklog } from "../../domain/delivery/DeliveryBacklog.ts"
import { DestinationSecrets, type SecretsRequest, type SecretsWritten } from "../../domain/delivery/DestinationSecrets.ts"
import { DeliveryPackages } from "../../projections/delivery/packages.ts"
import { destination, DestinationPut, maxLanesEach } from "../../domain/entities/destination.ts"
import { HeaderName, HeaderValue, headerIssues } from "../../domain/entities/headers.ts"
import { validate } from "../../domain/validation.ts"
import { getEntity } from "../../projections/EntityQueries.ts"
import { InvalidRequest } from "../problems.ts"
import { recordCommand } from "../recordCommand.ts"
import type { CommandAnswer, StoredWriteOnly, WriteOnlyFields } from "./entities.ts"
import { refreshTurn, refusedOverBacklog, refusedWhilePackaging, takeTurn } from "./deliveryPackages.ts"
import type { Reservations } from "../../infra/nats/reservations.ts"
import type { SharedTurns } from "../../infra/nats/sharedTurns.ts"
import { listed, makeLaneQuota } from "./laneQuota.ts"
import { InvalidCredentials } from "./partnerCredentials.ts"

/** PATCH: `secretHeaders: null` removes them all, `{name: null}` one of them. */
const SecretHeadersPatch = Schema.NullOr(StrictRecord(HeaderName, Schema.NullOr(HeaderValue)))

const invalid = (issues: ReadonlyArray<{ readonly path: ReadonlyArray<string | number>; readonly message: string }>) =>
  new InvalidRequest({ issues: issues.map((issue) => ({ in: "body" as const, ...issue })) })

/** The partner a destination names must exist: 400 naming `partnerId` otherwise. */
const checkPartner = (partnerId: unknown) =>
  typeof partnerId !== "string"
    ? Effect.void
    : Effect.flatMap(getEntity("partner", partnerId), (found) =>
      Option.isSome(found) ? Effect.void : Effect.fail(invalid([{ path: ["partnerId"], message: `partner ${partnerId} does not exist` }])))

/** The destination's fields now; none when it does not exist (never created, or deleted). */
const liveFields = (id: string) => Effect.map(getEntity(destination.type, id), Option.map((found) => found.state ?? {}))

const originOf = (url: unknown) => typeof url === "string" && URL.canParse(url) ? new URL(url).origin : undefined

/** Whether the URL moves to another origin (scheme, host or port); a path or query change keeps it. */
const movesOrigin = (before: unknown, after: unknown) => {
  const [from, to] = [originOf(before), originOf(after)]
  return from !== undefined && to !== undefined && from !== to
}

const secretsMustFollow = new InvalidCredentials({
  issues: [{ path: ["secretHeaders"], message: "secret headers must be given again when the url's origin changes; send {} or null to drop them" }]
})

/**
 * Where each store of what a destination keeps outside its entity will write next, taken before a
 * DELETE's command: its drop takes only what was written before then, never what a destination
 * created again under the id meanwhile was given. Unknown (a store that cannot say) drops it all.
 */
export interface DropBounds {
  /** the secrets store's last write (those written up to it are dropped) */
  readonly secrets?: number | undefined
  readonly outbox?: number | undefined
  readonly deliver?: number | undefined
  readonly deadLetters?: number | undefined
}

const boundsNow = Effect.gen(function*() {
  const known = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.map(Effect.option(effect), Option.getOrUndefined)
  const [secrets, outbox, deliver, deadLetters] = yield* Effect.all([
    known(DestinationSecrets.use((store) => store.sequence)),
    known(DeliveryPackages.use((packages) => packages.nextRow)),
    known(DeliveryBacklog.use((backlog) => backlog.nextSequence)),
    known(DeadLetterQueue.use((queue) => queue.nextSequence))
  ], { concurrency: 4 })
  return { secrets, outbox, deliver, deadLetters } satisfies DropBounds
})

/** A DELETE's bounds: the secrets' as they were when it was first sent (a keyed one sent again). */
const deleteBoundsOf = (id: string, commandId: string | undefined, bounds: DropBounds) =>
  commandId === undefined || bounds.secrets === undefined
    ? Effect.succeed(bounds)
    : Effect.map(
      Effect.option(DestinationSecrets.use((secrets) => secrets.deleteBound(id, commandId, bounds.secrets!))),
      (first) => ({ ...bounds, secrets: Option.getOrElse(first, () => bounds.secrets) })
    )

/**
 * Drops what the deleted destination `id` keeps outside its entity, written before `bounds` when
 * given: its secrets, its dead letters and the chunks still waiting, in the package outbox and on
 * DELIVER. The destination's history says how many were dropped and why (recorded first: a crash
 * before the purge leaves them to the next drop, never unrecorded).
 */
export const dropDeleted = (id: string, reason: string, bounds: DropBounds = {}) =>
  Effect.gen(function*() {
    const deadLetters = yield* DeadLetterQueue
    const backlog = yield* DeliveryBacklog
    const packages = yield* DeliveryPackages
    const [letters, waiting, unpublished] = yield* Effect.all([deadLetters.count(id), backlog.backlog(id), packages.waiting(id)], { concurrency: 3 })
    if (letters > 0 || waiting.chunks > 0 || unpublished.chunks > 0) {
      // An id never created (EntityNotFound) had no predecessor: what waits under it is not a deleted
      // destination's, and is left (the delivery bench puts chunks on DELIVER before creating its destinations).
      const recorded = yield* recordCommand(destination.type, id, { _tag: "RecordDeliveryDropped", deadLetters: letters, chunks: waiting.chunks + unpublished.chunks, reason },
        (message) => `destination ${id} could not record what its delete drops: ${message}; send it again`).pipe(
          Effect.as(true),
          Effect.catchIf((error) => error._tag === "EntityNotFound", () => Effect.succeed(false))
        )
      // the outbox first: DELIVER emptied opens the destination's lane barrier to what still waits there
      if (recorded) {
        yield* Effect.all([
          deadLetters.purge(id, bounds.deadLetters),
          Effect.andThen(packages.drop(id, bounds.outbox), backlog.purge(id, bounds.deliver))
        ], { concurrency: 2 })
      }
    }
    yield* (yield* DestinationSecrets).remove(id, bounds.secrets)
  })

const redact = (headers: Readonly<Record<string, string | null>>) =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, value === null ? null : Redacted.make(value)]))

/**
 * What the destination's history records of a write: its names and time, the same for the request sent
 * again (a replayed write answers the first one's), so its command is the one the entity remembers.
 */
const recordChange = (written: SecretsWritten): Schema.Json => ({ _tag: "RecordSecretsChange", headerNames: [...written.names], at: written.at })

/** The request a write comes from, when it has an Idempotency-Key: the whole of it digested, what its command asks and its secrets. */
const requestOf = (secrets: DestinationSecrets["Service"], keyed: { readonly commandId: string; readonly asked: string } | undefined, digest: string): SecretsRequest | undefined =>
  keyed === undefined ? undefined : { id: keyed.commandId, digest: secrets.digest([keyed.asked, digest]) }

/** The request's answer given again when it had one; else kept once it has one. */
const answers = (id: string, written: SecretsWritten, request: SecretsRequest | undefined): Pick<StoredWriteOnly<never, DestinationSecrets>, "answered" | "remember"> =>
  written.answer !== undefined
    ? { answered: JSON.parse(written.answer) as CommandAnswer }
    : request === undefined
    ? {}
    // not kept (the store failing): sent again, the request is sent as a retry whose answer is unknown
    : { remember: (answer) => Effect.ignore(DestinationSecrets.use((secrets) => secrets.answered(id, request.id, JSON.stringify(answer)))) }

/**
 * A refused request's undo: what its write replaced goes back (decryptable or not, given for the origin
 * it was given for), unless another request wrote the destination's secrets since (DestinationSecrets.putBack).
 */
const undo = (id: string, written: SecretsWritten) => Effect.ignore(DestinationSecrets.use((secrets) => secrets.putBack(id, written)))

const segmentSet = (value: unknown) => new Set(Array.isArray(value) ? value.map(String) : [])

/**
 * Whether the request changes the destination's segments: each one added packages every member of it,
 * each one dropped a remove of every member. Their order, or one named twice, changes nothing.
 */
const changesSegments = (live: Option.Option<Readonly<Record<string, unknown>>>, rest: Readonly<Record<string, unknown>>) => {
  if (!Object.hasOwn(rest, "segmentIds") || Option.isNone(live)) return false
  const [before, after] = [segmentSet(live.value["segmentIds"]), segmentSet(rest["segmentIds"])]
  return before.size !== after.size || [...after].some((segment) => !before.has(segment))
}

/**
 * The destination's `lanes` after the request: none when it leaves them as they are (a PATCH without
 * them) or when they are not a count (the entity refuses the request then).
 */
const lanesAfter = (method: "PUT" | "PATCH", rest: Readonly<Record<string, unknown>>): number | undefined => {
  if (method === "PATCH" && !Object.hasOwn(rest, "lanes")) return undefined
  const lanes = rest["lanes"] ?? 1
  return typeof lanes === "number" && Number.isInteger(lanes) && lanes >= 1 && lanes <= maxLanesEach ? lanes : undefined
}

const lanesOf = (live: Option.Option<Readonly<Record<string, unknown>>>) =>
  Option.isNone(live) ? 0 : typeof live.value["lanes"] === "number" ? live.value["lanes"] : 1

/**
 * `maxBacklog`: DELIVERY_REFRESH_MAX_BACKLOG, past which a change of an existing destination's segments
 * is refused (503); `maxLanes`: DELIVERY_MAX_LANES, the lanes of all destinations together (409 past it);
 * each the lowest of the live processes' (Cluster.strictest).
 * Both are checked in `turns` shared by every process, the lanes with `reservations` that outlive a
 * process dying with its command in flight (for `commandTimeoutMillis` and a margin).
 */
export const destinationWriteOnly = (options: {
  readonly maxBacklog: Effect.Effect<number>
  readonly maxLanes: Effect.Effect<number>
  readonly turns: SharedTurns
  readonly reservations: Reservations
  readonly commandTimeoutMillis: number
}) => {
  const quota = makeLaneQuota(options.maxLanes, options)
  return {
    putBody: DestinationPut,
    names: ["secretHeaders"],
    store: ({ id, keyed, method, writeOnly, rest, current }) =>
      Effect.gen(function*() {
        yield* checkPartner(rest["partnerId"])
        const secrets = yield* DestinationSecrets
        const live = Option.map(current, (found) => found.state ?? {})
        const given = Object.hasOwn(writeOnly, "secretHeaders")
        if (method === "PUT") {
          // a destination created under a deleted one's id gets nothing of it (a drop a crash cut short)
          if (Option.isNone(live)) yield* dropDeleted(id, "deleted destination: dropped before a destination was created again under its id")
          else if (!given && movesOrigin(live.value["url"], rest["url"]) && (yield* secrets.names(id)).length > 0) return yield* secretsMustFollow
          if (!given) return undefined
          // decoded by the route with DestinationPut
          const headers = writeOnly["secretHeaders"] as Readonly<Record<string, string>>
          const digest = secrets.digest(headers)
          const request = requestOf(secrets, keyed, digest)
          const put = (request?: SecretsRequest) => secrets.put(id, redact(headers) as Record<string, Redacted.Redacted<string>>, originOf(rest["url"]) ?? "", request)
          const written = yield* put(request)
          // a replayed write is not stored again after a creation: that would undo what came since
          return { after: recordChange(written), undo: undo(id, written), ...(written.replayed ? {} : { again: put() }), digest, ...answers(id, written, request) }
        }
        // a patch of a destination that does not exist stores nothing: its Patch answers 404
        if (Option.isNone(live)) return undefined
        const moves = Object.hasOwn(rest, "url") && movesOrigin(live.value["url"], rest["url"])
        if (!given) return moves && (yield* secrets.names(id)).length > 0 ? yield* secretsMustFollow : undefined
        const patch = validate(SecretHeadersPatch, writeOnly["secretHeaders"])
        if (Result.isFailure(patch)) return yield* invalid(patch.failure.map((issue) => ({ ...issue, path: ["secretHeaders", ...issue.path] })))
        const issues = headerIssues(patch.success ?? {}, "secretHeaders", { secrets: "allow" })
        if (issues.length > 0) return yield* invalid(issues.map((i) => ({ path: i.path, message: i.issue })))
        // given for the URL's origin after the patch; to another origin, the given headers replace them
        // all: none of the old ones follows the URL
        const origin = originOf(Object.hasOwn(rest, "url") ? rest["url"] : live.value["url"]) ?? ""
        const kept = Object.entries(patch.success ?? {}).filter((entry): entry is [string, string] => entry[1] !== null)
        const digest = secrets.digest(patch.success)
        const request = requestOf(secrets, keyed, digest)
        const written = patch.success === null
          ? yield* secrets.put(id, {}, origin, request)
          : moves
          ? yield* secrets.put(id, redact(Object.fromEntries(kept)) as Record<string, Redacted.Redacted<string>>, origin, request)
          : yield* secrets.patch(id, redact(patch.success), origin, request)
        return { after: recordChange(written), undo: undo(id, written), digest, ...answers(id, written, request) }
      }),
    // The bounds a write could pass: all destinations' lanes, and the backlog a change of segments adds
    // to. A write naming the segments or the lanes of an existing destination is pinned to the lanes and
    // segments it was checked against (checked again when another write changed them first): one putting
    // back what it was checked against may have become a change by the time it lands (stop 29's re-attack:
    // lanes kept at 16 while a lowering to 1 waited before it, 35 lanes against a bound of 20). Pinned to
    // those fields, not the revision: ~40 writes a second of the url refused every change of lanes (stop 30's third attack).
    // A change of segments takes the destination's refresh turn (deliveryPackages.ts) until it is answered:
    // a refresh checked meanwhile, in any process, would not see the package it adds (stop 30's attack: a
    // refresh and a change at once took a backlog bound at 500 to 900); the refresh then waits for it to be packaged.
    check: ({ id, method, rest, current: entity }) =>
      Effect.gen(function*() {
        const live = Option.map(entity, (found) => found.state ?? {})
        // A PATCH of lanes or segments that finds no destination answers 404 here, not from its command:
        // sent unchecked, that command landed on the destination a PUT created meanwhile and raised its
        // lanes past the bound (stop 31's third look: 24 lanes against 10, 11 races of 41).
        if (method === "PATCH" && Option.isNone(live) && (Object.hasOwn(rest, "lanes") || Object.hasOwn(rest, "segmentIds"))) {
          return yield* new EntityNotFound({ entityType: destination.type, entityId: id })
        }
        const segmentsTurn = Option.isSome(entity) && changesSegments(live, rest) ? yield* takeTurn(options.turns, refreshTurn(id)) : undefined
        const checks = Effect.gen(function*() {
          if (segmentsTurn !== undefined && Option.isSome(entity)) {
            yield* refusedWhilePackaging(id, entity.value.revision)
            yield* refusedOverBacklog(id, yield* options.maxBacklog, "change its segments")
          }
          const lanes = lanesAfter(method, rest)
          return lanes === undefined ? undefined : yield* quota.reserve(id, lanes, lanesOf(live))
        })
        const reserved = yield* Effect.onError(checks, () => segmentsTurn?.release ?? Effect.void)
        const pin = Option.isSome(entity) && (Object.hasOwn(rest, "segmentIds") || Object.hasOwn(rest, "lanes"))
          ? { revision: entity.value.revision, fields: { lanes: entity.value.state?.["lanes"] ?? null, segmentIds: entity.value.state?.["segmentIds"] ?? null } as Record<string, Schema.Json> }
          : {}
        if (reserved === undefined && segmentsTurn === undefined) return pin
        const settled = (accepted: Option.Option<number>) => Effect.ensuring(reserved?.settled(accepted) ?? Effect.void, segmentsTurn?.release ?? Effect.void)
        // the command lands while the turns are surely this process's, or not at all
        return { ...pin, settled, deadline: Math.min(reserved?.deadline ?? Infinity, segmentsTurn?.until ?? Infinity) }
      }),
    // A DELETE drops what was written before it: a PUT creating the destination again at the same time
    // writes after the delete (secrets, then the new destination's chunks and dead letters), and that
    // stays. Before, found by an outside attack, the DELETE's drop ran after that PUT's write and took
    // the new destination's credentials. Once the destination lives again, its creating PUT has dropped
    // the rest: the DELETE leaves it.
    // Its lanes are given back once the delete was accepted.
    // A DELETE sent again under its Idempotency-Key drops what it dropped then, no more (DestinationSecrets.deleteBound).
    deleting: (id, commandId) =>
      Effect.map(Effect.flatMap(boundsNow, (bounds) => deleteBoundsOf(id, commandId, bounds)), (bounds) =>
        Effect.andThen(
          Effect.flatMap(liveFields(id), (live) =>
            Option.isSome(live)
              ? DestinationSecrets.use((secrets) => secrets.remove(id, bounds.secrets))
              : dropDeleted(id, "destination deleted", bounds)),
          // answered once the list shows it gone: a write after the answer finds its lanes free
          listed(id, Option.none())
        ))
  } satisfies WriteOnlyFields<unknown, unknown>
}
