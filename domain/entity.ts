/**
 * The entity decider: commands on an entity of any declared type (create or replace, merge-patch,
 * delete) become events through pure `decide` and `evolve` functions. Looked-up values (whether the
 * parent exists) arrive inside the command, so `decide` is deterministic.
 */
import { Result, Schema } from "effect"
import { applyMergePatch, diffMergePatch } from "./mergePatch.ts"
import type { EntityType } from "./entityTypes.ts"
import { FieldIssue, validate } from "./validation.ts"

const JsonObject = Schema.Record(Schema.String, Schema.Json)

// Events ---------------------------------------------------------------------------------------

export const EntityCreated = Schema.TaggedStruct("EntityCreated", { fields: JsonObject })
/** `changes` is the RFC 7396 merge patch from the previous fields to the new ones: only what changed. */
export const EntityUpdated = Schema.TaggedStruct("EntityUpdated", { changes: JsonObject })
export const EntityDeleted = Schema.TaggedStruct("EntityDeleted", {})
export const EntityEvent = Schema.Union([EntityCreated, EntityUpdated, EntityDeleted])
export type EntityEvent = typeof EntityEvent.Type

const eventTypes: ReadonlySet<string> = new Set(EntityEvent.members.map((event) => event.fields._tag.schema.literal))

/** Whether this version of the decider knows an event type (a newer version may write others). */
export const isEntityEventType = (type: string): boolean => eventTypes.has(type)

/** The event as stored: its type name and its data without the tag. */
export const toEventData = (event: EntityEvent): { readonly type: string; readonly data: Schema.JsonObject } => {
  const { _tag, ...data } = event
  return { type: _tag, data: data as Schema.JsonObject }
}

/** The stored form back to the event; fails on an event type this decider does not know. */
export const fromEventData = (type: string, data: Schema.Json) =>
  Schema.decodeUnknownResult(EntityEvent)({ ...(data as object), _tag: type })

// Commands -------------------------------------------------------------------------------------

export const PutEntity = Schema.TaggedStruct("Put", { fields: Schema.Json })
export const PatchEntity = Schema.TaggedStruct("Patch", { patch: Schema.Json })
export const DeleteEntity = Schema.TaggedStruct("Delete", {})
export const EntityAction = Schema.Union([PutEntity, PatchEntity, DeleteEntity])
export type EntityAction = typeof EntityAction.Type

/** The parent as looked up by the sender when the command names one (campaign → advertiser, …). */
export const ParentLookup = Schema.Struct({ id: Schema.String, exists: Schema.Boolean })

export const EntityCommand = Schema.Struct({
  commandId: Schema.String,
  correlationId: Schema.String,
  causationId: Schema.optionalKey(Schema.String),
  entityType: Schema.String,
  entityId: Schema.String,
  /** If-Match: the revision the sender last saw */
  expectedRevision: Schema.optionalKey(Schema.Int),
  parent: Schema.optionalKey(ParentLookup),
  action: EntityAction
})
export type EntityCommand = typeof EntityCommand.Type

/** JSON with object keys sorted, so the same document always reads the same. */
const canonical = (value: unknown): string =>
  Array.isArray(value)
    ? `[${value.map(canonical).join(",")}]`
    : typeof value === "object" && value !== null
    ? `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(",")}}`
    : JSON.stringify(value)

/**
 * A short fingerprint of what a command asks — its action and expected revision, whatever the order
 * of their keys (FNV-1a, 2 × 32 bits) — so a command id reused for a different request is recognised.
 * Not cryptographic: it guards against mistakes.
 */
export const fingerprint = (command: Pick<EntityCommand, "action" | "expectedRevision">): string => {
  const text = canonical([command.action, command.expectedRevision ?? null])
  let a = 0x811c9dc5
  let b = 0x01000193 ^ text.length
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0")
}

// State ----------------------------------------------------------------------------------------

export const EntityState = Schema.Struct({
  status: Schema.Literals(["absent", "live", "deleted"]),
  /** revision of the last event applied; -1 before the first */
  revision: Schema.Int,
  fields: Schema.NullOr(JsonObject),
  createdAt: Schema.NullOr(Schema.String),
  updatedAt: Schema.NullOr(Schema.String)
})
export type EntityState = typeof EntityState.Type

export const initialState = (): EntityState => ({ status: "absent", revision: -1, fields: null, createdAt: null, updatedAt: null })

// Rejections -----------------------------------------------------------------------------------

export class EntityNotFound extends Schema.TaggedError<EntityNotFound>()("EntityNotFound", {
  entityType: Schema.String,
  entityId: Schema.String
}) {}

export class RevisionMismatch extends Schema.TaggedError<RevisionMismatch>()("RevisionMismatch", {
  entityType: Schema.String,
  entityId: Schema.String,
  expected: Schema.Int,
  actual: Schema.Int
}) {}

export class InvalidEntity extends Schema.TaggedError<InvalidEntity>()("InvalidEntity", {
  entityType: Schema.String,
  issues: Schema.Array(FieldIssue)
}) {}

export class ParentNotFound extends Schema.TaggedError<ParentNotFound>()("ParentNotFound", {
  field: Schema.String,
  parentType: Schema.String,
  parentId: Schema.String
}) {}

/** A command id (an Idempotency-Key) seen before with a different request. */
export class CommandIdReused extends Schema.TaggedError<CommandIdReused>()("CommandIdReused", {
  commandId: Schema.String
}) {}

export const EntityRejection = Schema.Union([EntityNotFound, RevisionMismatch, InvalidEntity, ParentNotFound, CommandIdReused])
export type EntityRejection = typeof EntityRejection.Type

// Decider --------------------------------------------------------------------------------------

const checkFields = (definition: EntityType, command: EntityCommand, fields: unknown) =>
  Result.flatMap(
    Result.mapError(validate(definition.fields, fields), (issues) => new InvalidEntity({ entityType: definition.name, issues })),
    (valid): Result.Result<Schema.JsonObject, EntityRejection> => {
      const parent = definition.parent
      const lookup = command.parent
      if (parent && lookup && lookup.id === valid[parent.field] && !lookup.exists) {
        return Result.fail(new ParentNotFound({ field: parent.field, parentType: parent.type, parentId: lookup.id }))
      }
      return Result.succeed(valid)
    }
  )

/** What a command does to an entity: the events to append (none when it changes nothing), or why not. */
export const decide = (
  definition: EntityType,
  command: EntityCommand,
  state: EntityState
): Result.Result<ReadonlyArray<EntityEvent>, EntityRejection> => {
  const notFound = () => Result.fail(new EntityNotFound({ entityType: command.entityType, entityId: command.entityId }))
  if (command.expectedRevision !== undefined && command.expectedRevision !== state.revision) {
    if (state.status !== "live" && command.action._tag !== "Put") return notFound()
    return Result.fail(new RevisionMismatch({
      entityType: command.entityType,
      entityId: command.entityId,
      expected: command.expectedRevision,
      actual: state.revision
    }))
  }
  const live = state.status === "live" ? state.fields : null
  switch (command.action._tag) {
    case "Put":
      return Result.map(checkFields(definition, command, command.action.fields), (fields): ReadonlyArray<EntityEvent> => {
        if (live === null) return [EntityCreated.make({ fields })]
        const changes = diffMergePatch(live, fields)
        return Object.keys(changes).length === 0 ? [] : [EntityUpdated.make({ changes })]
      })
    case "Patch": {
      if (live === null) return notFound()
      const patched = applyMergePatch(live, command.action.patch)
      return Result.map(checkFields(definition, command, patched), (fields): ReadonlyArray<EntityEvent> => {
        const changes = diffMergePatch(live, fields)
        return Object.keys(changes).length === 0 ? [] : [EntityUpdated.make({ changes })]
      })
    }
    case "Delete":
      return live === null ? notFound() : Result.succeed([EntityDeleted.make({})])
  }
}

/** Applies one recorded event; `revision` and `recordedAt` come from the store's envelope. */
export const evolve = (
  state: EntityState,
  event: EntityEvent,
  at: { readonly revision: number; readonly recordedAt: string }
): EntityState => {
  switch (event._tag) {
    case "EntityCreated":
      return { status: "live", revision: at.revision, fields: event.fields, createdAt: at.recordedAt, updatedAt: at.recordedAt }
    case "EntityUpdated":
      return {
        ...state,
        revision: at.revision,
        fields: applyMergePatch(state.fields ?? {}, event.changes) as Schema.JsonObject,
        updatedAt: at.recordedAt
      }
    case "EntityDeleted":
      return { ...state, status: "deleted", revision: at.revision, fields: null, updatedAt: at.recordedAt }
  }
}

/** Applies a stored event (type + data, as in the store or an envelope); an unknown event type is a defect. */
export const evolveRecorded = (
  state: EntityState,
  recorded: { readonly type: string; readonly data: Schema.Json; readonly revision: number; readonly recordedAt: string }
): EntityState => evolve(state, Result.getOrThrow(fromEventData(recorded.type, recorded.data)), recorded)

/** The state after stored events, in revision order, starting from `from` (default: nothing yet). */
export const replay = (
  events: ReadonlyArray<Parameters<typeof evolveRecorded>[1]>,
  from: EntityState = initialState()
): EntityState => events.reduce(evolveRecorded, from)
