/**
 * The record decider: an entity whose state is a document of fields checked by a schema, created or
 * replaced (Put), merge-patched (Patch, RFC 7396) and deleted. Advertisers, campaigns and strategies
 * are records; each declares its fields and, where it belongs to another entity, the parent field.
 * An update records only what changed, as a merge patch.
 */
import { Result, Schema } from "effect"
import { type AnyDecider, decider, type Decider } from "../Decider.ts"
import type { ParentState } from "../Decider.ts"
import { EntityHasChildren, EntityNotFound, type EntityRejection, InvalidEntity, ParentNotFound } from "../entity.ts"
import { applyMergePatch, diffMergePatch } from "../mergePatch.ts"
import { validate } from "../validation.ts"

const JsonObject = Schema.Record(Schema.String, Schema.Json)

export const EntityCreated = Schema.TaggedStruct("EntityCreated", { fields: JsonObject })
/** `changes` is the RFC 7396 merge patch from the previous fields to the new ones: only what changed. */
export const EntityUpdated = Schema.TaggedStruct("EntityUpdated", { changes: JsonObject })
export const EntityDeleted = Schema.TaggedStruct("EntityDeleted", {})
export const RecordEvent = Schema.Union([EntityCreated, EntityUpdated, EntityDeleted])
export type RecordEvent = typeof RecordEvent.Type

export const Put = Schema.TaggedStruct("Put", { fields: Schema.Json })
export const Patch = Schema.TaggedStruct("Patch", { patch: Schema.Json })
export const Delete = Schema.TaggedStruct("Delete", {})
export const RecordCommand = Schema.Union([Put, Patch, Delete])
export type RecordCommand = typeof RecordCommand.Type

export const RecordState = Schema.Struct({
  status: Schema.Literals(["absent", "live", "deleted"]),
  fields: Schema.NullOr(JsonObject)
})
export type RecordState = typeof RecordState.Type

export interface RecordDecider extends Decider<RecordCommand, RecordEvent, RecordState> {
  /** the schema of the fields (the body of PUT) */
  readonly fields: Schema.Codec<Schema.JsonObject, unknown>
  /** the field naming the parent, which must exist when the record is put under it (a campaign's advertiserId) */
  readonly parent?: { readonly type: string; readonly field: string }
}

/** Whether a decider is a record's (the API gives it PUT, PATCH and DELETE). */
export const isRecordDecider = (d: AnyDecider): d is RecordDecider => "fields" in d

/** A record entity type: its id schema, its fields' schema, and its parent field if any. */
export const recordDecider = (definition: {
  readonly type: string
  readonly id: Schema.Codec<string, unknown>
  readonly fields: Schema.Top
  readonly parent?: { readonly type: string; readonly field: string }
}): RecordDecider => {
  const fieldsSchema = definition.fields as unknown as Schema.Codec<Schema.JsonObject, unknown>
  const parent = definition.parent
  const checkFields = (fields: unknown, parentState: ParentState | undefined) =>
    Result.flatMap(
      Result.mapError(validate(fieldsSchema, fields), (issues) => new InvalidEntity({ entityType: definition.type, issues })),
      (valid): Result.Result<Schema.JsonObject, EntityRejection> => {
        // The runtime gives the parent's state when the result is put under a parent it was not under.
        if (parent && parentState && parentState.id === valid[parent.field] && !parentState.exists) {
          return Result.fail(new ParentNotFound({ field: parent.field, parentType: parent.type, parentId: parentState.id }))
        }
        return Result.succeed(valid)
      }
    )
  const updated = (from: Schema.JsonObject, to: Schema.JsonObject): ReadonlyArray<RecordEvent> => {
    const changes = diffMergePatch(from, to)
    return Object.keys(changes).length === 0 ? [] : [EntityUpdated.make({ changes })]
  }
  const base = decider<RecordCommand, RecordEvent, RecordState>({
    type: definition.type,
    id: definition.id,
    command: RecordCommand,
    event: RecordEvent,
    state: RecordState,
    initialState: () => ({ status: "absent", fields: null }),
    decide: (command, state, context) => {
      const notFound = () => Result.fail(new EntityNotFound({ entityType: context.entityType, entityId: context.entityId }))
      const live = state.status === "live" ? state.fields : null
      switch (command._tag) {
        case "Put":
          return Result.map(checkFields(command.fields, context.parent), (fields) => live === null ? [EntityCreated.make({ fields })] : updated(live, fields))
        case "Patch": {
          if (live === null) return notFound()
          return Result.flatMap(checkFields(applyMergePatch(live, command.patch), context.parent), (fields) => Result.succeed(updated(live, fields)))
        }
        case "Delete": {
          if (live === null) return notFound()
          // The runtime gives the live children of a type that has them (domain/children.ts).
          const children = context.children ?? []
          if (children.length > 0) {
            return Result.fail(new EntityHasChildren({ entityType: context.entityType, entityId: context.entityId, children: children.length, examples: children.slice(0, 5) }))
          }
          return Result.succeed([EntityDeleted.make({})])
        }
      }
    },
    evolve: (state, event) => {
      switch (event._tag) {
        case "EntityCreated":
          return { status: "live", fields: event.fields }
        case "EntityUpdated":
          return { status: "live", fields: applyMergePatch(state.fields ?? {}, event.changes) as Schema.JsonObject }
        case "EntityDeleted":
          return { status: "deleted", fields: null }
      }
    },
    toJson: (state) => state.status === "live" ? state.fields : null,
    isDeleted: (state) => state.status === "deleted",
    outcomes: { EntityCreated: "created", EntityUpdated: "updated", EntityDeleted: "deleted" },
    // A conditional patch or delete of an entity that does not exist is "not found", not "stale".
    staleRevision: (command, state, context) =>
      state.status !== "live" && command._tag !== "Put" ? new EntityNotFound({ entityType: context.entityType, entityId: context.entityId }) : undefined,
    publishesSnapshots: true,
    ...(parent === undefined ? {} : {
      parentType: parent.type,
      parentOf: (state: RecordState) => {
        const id = state.status === "live" && state.fields !== null && Object.hasOwn(state.fields, parent.field) ? state.fields[parent.field] : undefined
        return typeof id === "string" ? { type: parent.type, id } : undefined
      }
    })
  })
  return { ...base, fields: fieldsSchema, ...(parent === undefined ? {} : { parent }) }
}
