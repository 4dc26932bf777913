/**
 * The entity API, generated per registered entity type (so each type's body is documented exactly):
 * for records PUT create/replace, PATCH merge-patch, DELETE; for other deciders POST …/commands with
 * the decider's command schema as body; for every type GET (now or `asOf`), history, list. Commands go
 * through the command bus to the entity's single writer; reads fold the event store (read-your-writes).
 */
import { createHash } from "node:crypto"
import { Cause, Data, Effect, Exit, Option, Schema, SchemaGetter } from "effect"
import { CommandBus, CommandTimeout } from "../../domain/CommandBus.ts"
import type { EntityKind } from "../../domain/EntityKind.ts"
import { type DeciderRegistry, makeRegistry } from "../../domain/DeciderRegistry.ts"
import { deciders } from "../../domain/entities/index.ts"
import { isRecordDecider, type RecordDecider } from "../../domain/entities/record.ts"
import { CommandIdReused, type EntityCommand, EntityNotFound, fingerprint, RevisionMismatch } from "../../domain/entity.ts"
import { EventEnvelope } from "../../domain/envelope.ts"
import type { EventStore } from "../../domain/EventStore.ts"
import type { EntitySnapshot } from "../../domain/snapshot.ts"
import { nextUuidv7 } from "../../domain/uuidv7.ts"
import { EntityReadModel } from "../../projections/EntityReadModel.ts"
import { entityHistory, getEntity } from "../../projections/EntityQueries.ts"
import type { Principal } from "../auth.ts"
import { CommandFailed, Forbidden, InvalidRequest, NotFound, Overloaded, problemResponse } from "../problems.ts"
import { route, type AnyRoute } from "../route.ts"
import { readBoundedPage } from "./boundedPage.ts"
import { IsoTimestamp, Limit, NonNegativeIntFromString, RevisionTag } from "./params.ts"

export const EntityResponse = Schema.Struct({
  type: Schema.String,
  id: Schema.String,
  revision: Schema.Int,
  state: Schema.NullOr(Schema.Record(Schema.String, Schema.Json)),
  updatedAt: Schema.NullOr(Schema.String)
}).annotate({ identifier: "Entity" })

const EntityPage = Schema.Struct({ items: Schema.Array(EntityResponse), next: Schema.optionalKey(Schema.String) }).annotate({ identifier: "EntityPage" })
const HistoryPage = Schema.Struct({ events: Schema.Array(EventEnvelope), nextRevision: Schema.optionalKey(Schema.Int) }).annotate({ identifier: "EntityHistory" })

const CommandHeaders = Schema.Struct({
  "if-match": Schema.optionalKey(RevisionTag),
  "idempotency-key": Schema.optionalKey(Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(255))),
  "x-correlation-id": Schema.optionalKey(Schema.String.check(Schema.isMaxLength(255)))
})

const MergePatch = Schema.Record(Schema.String, Schema.Json).annotate({ identifier: "MergePatch", description: "RFC 7396 JSON merge patch" })

const etag = (revision: number) => `"${revision}"`

/** The entity was created or deleted between its read and the turns a write hook's check took: the request is checked again. */
class MovedWhileChecked extends Data.TaggedError("MovedWhileChecked") {}
const lives = (entity: Option.Option<EntitySnapshot>) => Option.isSome(entity) && entity.value.state !== null
/** What an `If-Match: "<revision>"` asks of a command. */
const expectedRevisionOf = (ifMatch: string | undefined) => ifMatch === undefined ? {} : { expectedRevision: Number(ifMatch.slice(1, -1)) }

const respond = (status: number, entity: EntitySnapshot) => ({
  status,
  body: { type: entity.type, id: entity.id, revision: entity.revision, state: entity.state, updatedAt: entity.updatedAt },
  headers: { etag: etag(entity.revision) }
})

/** The entity as `principal` is shown it: a service key without what its type keeps for auditors (Decider's serviceView). */
const shownTo = (principal: Principal, kind: EntityKind | undefined, entity: EntitySnapshot): EntitySnapshot => {
  const view = kind?.decider.serviceView
  return view === undefined || principal.role === "auditor" || entity.state === null ? entity : { ...entity, state: view(entity.state) }
}

const problems = {
  400: problemResponse("invalid id, body or header (problem+json naming the field)"),
  401: problemResponse("missing or unknown API key"),
  403: problemResponse("the key's role may not do this"),
  404: problemResponse("no such entity"),
  503: problemResponse("too many reads in progress, or a dependency is down; see Retry-After")
} as const

const commandProblems = {
  ...problems,
  412: problemResponse("If-Match names a stale revision; nothing changed"),
  409: problemResponse("the entity's rules refuse the command, or it still has live children (entity-has-children)"),
  422: problemResponse("the parent entity does not exist, the Idempotency-Key was used for a different request, or a write-only field must be given again (a destination's secretHeaders when its url moves to another origin)"),
  503: problemResponse("overloaded or a dependency is down; see Retry-After"),
  504: problemResponse("no answer in time; retry with the same Idempotency-Key")
} as const

/**
 * Fields of a record type's PUT and PATCH bodies that never reach its entity (a destination's secret
 * headers: api/routes/destinationSecrets.ts). They are split off the body and handed to `store`
 * before the command; the command `store` answers (telling the entity what changed, never a value)
 * is sent after it.
 */
/**
 * What `store` did: the command that tells the entity (`after`), and how to put the write-only fields
 * back as they were (`undo`), run when the entity refuses the request's own command (412, 400, 404,
 * 409, 422): a refused request changes nothing. An uncertain outcome (timeout, bus failure) keeps them,
 * as sending the request again converges.
 */
export interface StoredWriteOnly<E, R> {
  /** the command recording the change (names, never values) */
  readonly after: Schema.Json
  /** puts them back as they were: run when the entity refuses the command */
  readonly undo: Effect.Effect<void, E, R>
  /**
   * stores them again: run when the command created the entity, since a DELETE may have come between
   * this store and the command, and its drop taken what was stored for the entity it deleted
   */
  readonly again?: Effect.Effect<unknown, E, R>
  /** a keyed digest of the write-only fields: part of the command's fingerprint (EntityCommand.writeOnlyDigest) */
  readonly digest?: string
  /** the request was answered before (sent again under its Idempotency-Key): that answer, given again with no command */
  readonly answered?: CommandAnswer
  /** keeps the request's answer for when it is sent again */
  readonly remember?: (answer: CommandAnswer) => Effect.Effect<void, never, R>
}

/** A command's answer: its status, the entity and its ETag. */
export type CommandAnswer = ReturnType<typeof respond>

/**
 * What a write hook's `check` answers: the revision of the entity its checks were made against, and
 * what to run once the request is answered.
 */
export interface Checked<R> {
  /**
   * The command carries this revision as `checkedRevision` (unless the request gave its own If-Match).
   * When the entity moved on between the check and the command, the request is checked and sent again
   * under the same command id (three times at most, then 503 with Retry-After 1): a check is never passed
   * against a state that is gone, and with any number of processes, requests sent at once go one at a time.
   */
  readonly revision?: number
  /**
   * The values at `revision` of the fields the checks read (null: absent): the command is then refused
   * only when one of them changed meanwhile (EntityCommand.checkedFields), not when any write came between.
   */
  readonly fields?: Readonly<Record<string, Schema.Json>>
  /** Runs once the request is answered, whatever the answer: with the revision its command left the entity at when accepted. */
  readonly settled?: (accepted: Option.Option<number>) => Effect.Effect<void, never, R>
  /**
   * Epoch ms past which the command must not be applied (it answers 504 then, not applied): while what
   * the checks hold (a turn shared by every process) is surely this request's.
   */
  readonly deadline?: number
}

/** A PUT or PATCH as a write hook sees it: `rest` is the body without the write-only fields. */
export interface WriteRequest {
  readonly id: string
  readonly method: "PUT" | "PATCH"
  readonly rest: Readonly<Record<string, unknown>>
  readonly current: Option.Option<EntitySnapshot>
}

/** `E`, `R`: what `store` and `deleting` may fail with and need; `CE`, `CR`: what `check` may. */
export interface WriteOnlyFields<E, R, CE = E, CR = R> {
  /** the PUT body: the record's fields and the write-only ones (annotated `writeOnly` for OpenAPI) */
  readonly putBody: Schema.Top
  /** the write-only fields' names */
  readonly names: ReadonlyArray<string>
  /**
   * Runs first on every PUT and PATCH of the type: may refuse the request (a bound its change would pass).
   * `current`: the entity as the request found it (none: absent or deleted), read once for it and `store`.
   */
  readonly check?: (request: WriteRequest) => Effect.Effect<Checked<CR> | undefined, CE, CR>
  /**
   * Runs before every PUT and PATCH of the type (it may check the rest too): PUT gets the write-only
   * fields as given, PATCH their merge patch (either may have none). `rest` is the body without them.
   */
  readonly store: (request: WriteRequest & {
    readonly writeOnly: Readonly<Record<string, unknown>>
    /**
     * A request with an Idempotency-Key: its command id, and the fingerprint of what its command asks (its
     * action and If-Match, not the write-only fields). None without a key: every such request is new.
     */
    readonly keyed: { readonly commandId: string; readonly asked: string } | undefined
  }) => Effect.Effect<StoredWriteOnly<E, R> | undefined, E, R>
  /**
   * Runs before a DELETE's command and answers what to run once the delete was accepted: drop what
   * the entity keeps outside history (as it was before the command, not what a PUT creating the entity
   * again wrote meanwhile). The drop's failure is logged, not answered (the delete happened); `store`
   * must drop it again before a PUT creates an entity under that id. `commandId`: the DELETE's, when it has
   * an Idempotency-Key (sent again, it is answered what it did and must drop no more than it did then).
   */
  readonly deleting?: (id: string, commandId: string | undefined) => Effect.Effect<Effect.Effect<void, E, R>, E, R>
}

export interface EntityRoutesOptions<E = never, R = never, CE = never, CR = never> {
  /** the entity types: one set of routes each; default the built-in ones */
  readonly registry?: DeciderRegistry
  /** per record type, its write-only fields */
  readonly writeOnly?: Readonly<Record<string, WriteOnlyFields<E, R, CE, CR>>>
}

export const entityRoutes = <E = never, R = never, CE = never, CR = never>(
  options: EntityRoutesOptions<E, R, CE, CR> = {}
): ReadonlyArray<AnyRoute<CommandBus | EntityReadModel | EventStore | R | CR>> => {
  const registry = options.registry ?? makeRegistry(deciders)
  const commandId = (principal: Principal, type: string, id: string, key: string | undefined) =>
    key === undefined
      ? nextUuidv7
      // The same key from the same client for the same entity is the same command.
      : Effect.succeed(createHash("sha256").update(`${principal.id}\n${type}\n${id}\n${key}`).digest("hex").slice(0, 32))
  /** The command id of a request with an Idempotency-Key; none without one. */
  const keyedCommandId = (principal: Principal, type: string, id: string, key: string | undefined) =>
    key === undefined ? Effect.succeed(undefined) : commandId(principal, type, id, key)

  const send = (
    type: string,
    id: string,
    principal: Principal,
    headers: typeof CommandHeaders.Type,
    action: Schema.Json,
    /**
     * `onRejected`: run when the entity refuses the command; `checkedRevision`, `checkedFields`,
     * `writeOnlyDigest`: as EntityCommand's (a write hook's check and write-only fields)
     */
    options: {
      readonly onRejected?: Effect.Effect<void, E, R> | undefined
      readonly checkedRevision?: number | undefined
      readonly checkedFields?: Readonly<Record<string, Schema.Json>> | undefined
      readonly writeOnlyDigest?: string | undefined
      readonly deadline?: number | undefined
    } = {}
  ) =>
    Effect.gen(function*() {
      const { checkedFields, checkedRevision, deadline, onRejected, writeOnlyDigest } = options
      const bus = yield* CommandBus
      const cid = yield* commandId(principal, type, id, headers["idempotency-key"])
      const ifMatch = headers["if-match"]
      const command: EntityCommand = {
        commandId: cid,
        correlationId: headers["x-correlation-id"] ?? cid,
        entityType: type,
        entityId: id,
        action,
        ...expectedRevisionOf(ifMatch),
        ...(checkedRevision === undefined ? {} : { checkedRevision }),
        ...(checkedRevision === undefined || checkedFields === undefined ? {} : { checkedFields }),
        ...(writeOnlyDigest === undefined ? {} : { writeOnlyDigest }),
        ...(deadline === undefined ? {} : { deadline })
      }
      const reply = yield* bus.send(command)
      switch (reply._tag) {
        case "Accepted":
          return respond(reply.outcome === "created" ? 201 : 200, shownTo(principal, registry.get(type), reply.entity))
        case "Rejected":
          if (onRejected !== undefined) yield* onRejected
          return yield* Effect.fail(reply.error)
        case "Failed":
          return yield* new CommandFailed({ detail: reply.message })
        case "Expired":
          // it reached its entity after this request's deadline (clocks of two processes disagreeing): not applied
          return yield* new CommandTimeout({ commandId: cid, timeoutMillis: 0 })
      }
    })

  /** The body split into its write-only fields and the rest (what the command carries). */
  const split = (body: Readonly<Record<string, unknown>>, names: ReadonlyArray<string>) => {
    const writeOnly: Record<string, unknown> = {}
    const rest: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(body)) (names.includes(key) ? writeOnly : rest)[key] = value
    return { writeOnly, rest }
  }

  /** The command with the write-only fields stored first, and the entity told after (answering its final state). */
  const sendWithWriteOnly = (
    type: string,
    id: string,
    principal: Principal,
    headers: typeof CommandHeaders.Type,
    method: "PUT" | "PATCH",
    body: Readonly<Record<string, unknown>>,
    action: (rest: Schema.Json) => Schema.Json
  ) =>
    Effect.gen(function*() {
      const hook = options.writeOnly?.[type]
      if (hook === undefined) return yield* send(type, id, principal, headers, action(body as Schema.Json))
      const { rest, writeOnly } = split(body, hook.names)
      /**
       * The write-only fields stored, then the command; `accepted` is told the revision it left the entity at.
       * `pinned`: what the command carries of the checks (the revision and fields they read, unless the
       * request gave its own If-Match; their deadline).
       */
      const write = (
        current: Option.Option<EntitySnapshot>,
        pinned: { readonly revision: number | undefined; readonly fields: Checked<unknown>["fields"]; readonly deadline: number | undefined } | undefined,
        accepted: (revision: number) => void
      ) =>
        Effect.gen(function*() {
          const key = headers["idempotency-key"]
          const cid = yield* keyedCommandId(principal, type, id, key)
          const keyed = cid === undefined ? undefined : { commandId: cid, asked: fingerprint({ action: action(rest as Schema.Json), ...expectedRevisionOf(headers["if-match"]) }) }
          const stored = yield* hook.store({ id, method, writeOnly, rest, current, keyed })
          if (stored?.answered !== undefined) return stored.answered
          const first = yield* send(type, id, principal, headers, action(rest as Schema.Json), {
            onRejected: stored?.undo,
            checkedRevision: pinned?.revision,
            checkedFields: pinned?.fields,
            writeOnlyDigest: stored?.digest,
            deadline: pinned?.deadline
          })
          accepted(first.body.revision)
          if (stored === undefined) return first
          if (first.status === 201 && stored.again !== undefined) yield* stored.again
          // Its own command, under a key of its own derived from the request's: a retry of the request
          // (answered what its first command did) records the change once; the If-Match was the first command's.
          const correlation = headers["x-correlation-id"]
          const secondHeaders = { ...(correlation === undefined ? {} : { "x-correlation-id": correlation }), ...(key === undefined ? {} : { "idempotency-key": `${key}\nwrite-only` }) }
          const second = yield* send(type, id, principal, secondHeaders, stored.after).pipe(
            // a DELETE came between the two commands: the write was applied, then the entity deleted, in that order;
            // or the key's earlier request recorded it already (its record bears another time)
            Effect.catchIf((error) => error instanceof EntityNotFound || error instanceof CommandIdReused, () => Effect.succeed(undefined))
          )
          const answer = second === undefined ? first : { ...second, status: first.status }
          if (stored.remember !== undefined) yield* stored.remember(answer)
          return answer
        })
      const check = hook.check
      if (check === undefined) return yield* write(yield* getEntity(type, id), undefined, () => {})
      for (let attempt = 1; ; attempt++) {
        let accepted: number | undefined
        let pinned: number | undefined
        const result = yield* Effect.exit(Effect.acquireUseRelease(
          Effect.flatMap(getEntity(type, id), (current) => Effect.map(check({ id, method, rest, current }), (checked) => ({ current, checked }))),
          ({ checked, current }) =>
            Effect.gen(function*() {
              // What the checks hold (turns every process shares) was taken after the entity was read: one created
              // or deleted meanwhile has the request checked again (stop 30's re-attack: two creations of one id at
              // once, the second took the first's packages for a deleted predecessor's). Only that: other changes
              // are the pin's to catch (`revision`, and `fields` for the changes that matter to the checks).
              if (checked?.settled !== undefined && lives(yield* getEntity(type, id)) !== lives(current)) return yield* new MovedWhileChecked()
              pinned = headers["if-match"] === undefined ? checked?.revision : undefined
              return yield* write(current, { revision: pinned, fields: checked?.fields, deadline: checked?.deadline }, (revision) => void (accepted = revision))
            }),
          ({ checked }) => checked?.settled?.(Option.fromNullishOr(accepted)) ?? Effect.void
        ))
        if (Exit.isSuccess(result)) return result.value
        const stale = Cause.findErrorOption(result.cause).pipe(Option.exists((error) =>
          error instanceof MovedWhileChecked || (pinned !== undefined && error instanceof RevisionMismatch)))
        if (!stale) return yield* Effect.failCause(result.cause)
        if (attempt === 3) {
          return yield* new Overloaded({ detail: `${type} ${id} kept changing while this request was checked against it; send it again`, retryAfterSeconds: 1 })
        }
      }
    })

  /** PUT, PATCH and DELETE of a record type. */
  const recordRoutes = (definition: RecordDecider, Params: Schema.Struct<{ readonly id: Schema.Codec<string, unknown> }>) => {
    const type = definition.type
    const tags = [type]
    const base = `/v1/entities/${type}`
    const putBody = (options.writeOnly?.[type]?.putBody ?? definition.fields) as Schema.Codec<Schema.JsonObject, unknown>
    return [
      route({
        method: "PUT", url: `${base}/:id`, tags, roles: ["service"], admission: "commands",
        summary: `Create (201) or replace (200) a ${type}`,
        params: Params, headers: CommandHeaders, body: putBody,
        responses: { 200: { description: "replaced", schema: EntityResponse }, 201: { description: "created", schema: EntityResponse }, ...commandProblems },
        handler: ({ params, headers, body, principal }) =>
          sendWithWriteOnly(type, params.id, principal, headers, "PUT", body, (fields) => ({ _tag: "Put", fields }))
      }),
      route({
        method: "PATCH", url: `${base}/:id`, tags, roles: ["service"], admission: "commands",
        summary: `Merge-patch a ${type} (RFC 7396; application/merge-patch+json or application/json)`,
        params: Params, headers: CommandHeaders, body: MergePatch, consumes: ["application/merge-patch+json", "application/json"],
        responses: { 200: { description: "patched", schema: EntityResponse }, ...commandProblems },
        handler: ({ params, headers, body, principal }) =>
          sendWithWriteOnly(type, params.id, principal, headers, "PATCH", body, (patch) => ({ _tag: "Patch", patch }))
      }),
      route({
        method: "DELETE", url: `${base}/:id`, tags, roles: ["service"], admission: "commands",
        summary: `Delete a ${type}`,
        params: Params, headers: CommandHeaders,
        responses: { 200: { description: "deleted (state is null)", schema: EntityResponse }, ...commandProblems },
        handler: ({ params, headers, principal }) => {
          const deleting = options.writeOnly?.[type]?.deleting
          const sent = send(type, params.id, principal, headers, { _tag: "Delete" })
          return deleting === undefined ? sent : Effect.flatMap(Effect.flatMap(keyedCommandId(principal, type, params.id, headers["idempotency-key"]), (cid) => deleting(params.id, cid)), (drop) =>
            Effect.tap(sent, () =>
              drop.pipe(Effect.catchCause((cause) => Effect.logWarning("a deleted entity's outside data was not dropped; it is before a re-creation", { type, id: params.id, cause })))))
        }
      })
    ]
  }

  /** POST …/commands: any command of the type's decider, its schema as the body. */
  const commandRoute = (kind: EntityKind, Params: Schema.Struct<{ readonly id: Schema.Codec<string, unknown> }>) => {
    const type = kind.type
    const encode = Schema.encodeSync(kind.decider.command)
    return route({
      method: "POST", url: `/v1/entities/${type}/:id/commands`, tags: [type], roles: ["service"], admission: "commands",
      summary: `Send a command to a ${type} (created: 201)`,
      params: Params, headers: CommandHeaders, body: kind.decider.command,
      responses: { 200: { description: "applied", schema: EntityResponse }, 201: { description: "applied; the entity was created", schema: EntityResponse }, ...commandProblems },
      handler: ({ params, headers, body, principal }) =>
        Effect.gen(function*() {
          // Wake is the reminders' command (domain/wake.ts), and a decider may name others: only the platform sends them.
          const tag = (body as { readonly _tag: string })._tag
          const platformOnly = tag === "Wake" ? "Wake is sent by the platform's reminders only" : kind.decider.platformCommands?.[tag]
          if (platformOnly !== undefined) return yield* new InvalidRequest({ issues: [{ in: "body", path: ["_tag"], message: platformOnly }] })
          return yield* send(type, params.id, principal, headers, encode(body) as Schema.Json)
        })
    })
  }

  return registry.kinds.flatMap((kind) => {
    const definition = kind.decider
    const type = kind.type
    const id = definition.id as Schema.Codec<string>
    const Params = Schema.Struct({ id: definition.id })
    /** Opaque to clients: the last id of the previous page, base64url. */
    const Cursor = Schema.String.pipe(Schema.decodeTo(id, {
      decode: SchemaGetter.transform((cursor: string) => Buffer.from(cursor, "base64url").toString()),
      encode: SchemaGetter.transform((id: string) => Buffer.from(id).toString("base64url"))
    }))
    const encodeCursor = Schema.encodeSync(Cursor)
    const tags = [type]
    const base = `/v1/entities/${type}`
    return [
      ...(isRecordDecider(definition) ? recordRoutes(definition, Params) : [commandRoute(kind, Params)]),
      route({
        method: "GET", url: `${base}/:id`, tags, roles: ["service", "auditor"], admission: "reads",
        summary: `A ${type}: its current state (never older than an acknowledged write), or its state at asOf (auditor)`,
        params: Params, query: Schema.Struct({ asOf: Schema.optionalKey(IsoTimestamp) }),
        responses: { 200: { description: "the entity", schema: EntityResponse }, ...problems },
        handler: ({ params, query, principal }) =>
          Effect.gen(function*() {
            if (query.asOf !== undefined && principal.role === "service") {
              return yield* new Forbidden({ detail: "asOf is for auditors" })
            }
            const found = yield* getEntity(type, params.id, query.asOf)
            if (Option.isNone(found)) {
              return yield* new NotFound({ detail: query.asOf === undefined ? `${type} ${params.id} does not exist` : `${type} ${params.id} did not exist at ${query.asOf}` })
            }
            return respond(200, shownTo(principal, kind, found.value))
          })
      }),
      route({
        method: "GET", url: `${base}/:id/history`, tags, roles: ["auditor"], admission: "reads",
        summary: `A ${type}'s events in revision order`,
        params: Params,
        query: Schema.Struct({ fromRevision: Schema.optionalKey(NonNegativeIntFromString), until: Schema.optionalKey(IsoTimestamp), limit: Schema.optionalKey(Limit) }),
        responses: { 200: { description: "events", schema: HistoryPage }, ...problems },
        handler: ({ params, query }) =>
          Effect.gen(function*() {
            const until = query.until === undefined ? {} : { until: query.until }
            // a short slice is the stream's end or `until`
            const page = yield* readBoundedPage(query.limit ?? 100, query.fromRevision ?? 0, (count, fromRevision) =>
              Effect.map(
                entityHistory(type, params.id, { fromRevision, limit: count, ...until }),
                (events) => ({ items: events, more: events.length === count, next: (events.at(-1)?.revision ?? fromRevision - 1) + 1 })
              ), (_last, next: EventEnvelope) => next.revision)
            return { status: 200, body: { events: page.items, ...(page.more ? { nextRevision: page.next } : {}) } }
          })
      }),
      route({
        method: "GET", url: base, tags, roles: ["service", "auditor"], admission: "reads",
        summary: `List live ${type}s by id (from the read model: eventually consistent)`,
        query: Schema.Struct({ limit: Schema.optionalKey(Limit), cursor: Schema.optionalKey(Cursor) }),
        responses: { 200: { description: "a page", schema: EntityPage }, ...problems },
        handler: ({ query, principal }) =>
          Effect.gen(function*() {
            const model = yield* EntityReadModel
            const page = yield* readBoundedPage(query.limit ?? 100, query.cursor, (count, after) =>
              Effect.map(model.list(type, { limit: count, ...(after === undefined ? {} : { after }) }), (slice) => ({
                items: slice.items, more: slice.more, next: slice.items.at(-1)?.id ?? after
              })), (last: EntitySnapshot) => last.id)
            return {
              status: 200,
              body: { items: page.items.map((e) => respond(200, shownTo(principal, kind, e)).body), ...(page.more && page.next !== undefined ? { next: encodeCursor(page.next) } : {}) }
            }
          })
      })
    ]
  })
}
