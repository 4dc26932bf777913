import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import type { DecideContext } from "../../../domain/Decider.ts"
import { fingerprint, type EntityCommand, type EntityRejection, RevisionMismatch } from "../../../domain/entity.ts"
import type { RecordCommand as EntityAction, RecordEvent as EntityEvent, RecordState as EntityState } from "../../../domain/entities/record.ts"
import { strategy } from "../../../domain/entities/strategy.ts"
import { note } from "../../fixtures/note.ts"

const fields = { campaignId: "18446744073709551615", name: "retargeting", bidPrice: 2.5, segmentIds: ["1", "2"] }

const command = (action: EntityAction, extra: Partial<EntityCommand> = {}): EntityCommand => ({
  commandId: "c1",
  correlationId: "r1",
  entityType: "strategy",
  entityId: "42",
  action,
  ...extra
})

/** given(events) → the state they fold to */
const given = (...events: ReadonlyArray<EntityEvent>): EntityState => events.reduce(strategy.evolve, strategy.initialState())

/**
 * when(command) → the events it causes (then), or its rejection. An If-Match revision is checked by
 * the entity runtime before `decide`, with the decider's own `staleRevision` rule: done here the same way.
 */
const when = (
  state: EntityState,
  cmd: EntityCommand,
  revision = -1,
  relatives: Pick<DecideContext, "parent" | "children"> = {}
): Result.Result<ReadonlyArray<EntityEvent>, EntityRejection> => {
  const context: DecideContext = { entityType: cmd.entityType, entityId: cmd.entityId, ...relatives }
  const action = cmd.action as EntityAction
  if (cmd.expectedRevision !== undefined && cmd.expectedRevision !== revision) {
    return Result.fail(strategy.staleRevision?.(action, state, context) ??
      new RevisionMismatch({ entityType: cmd.entityType, entityId: cmd.entityId, expected: cmd.expectedRevision, actual: revision }))
  }
  return strategy.decide(action, state, context)
}

const created: EntityEvent = { _tag: "EntityCreated", fields }

describe("record decider (strategy)", () => {
  it("creates an absent entity", () => {
    assert.deepStrictEqual(when(given(), command({ _tag: "Put", fields })), Result.succeed([created]))
  })

  it("replaces with only the changed fields, as a merge patch", () => {
    const result = when(given(created), command({ _tag: "Put", fields: { ...fields, bidPrice: 3, segmentIds: ["2"] } }))
    assert.deepStrictEqual(result, Result.succeed([{ _tag: "EntityUpdated", changes: { bidPrice: 3, segmentIds: ["2"] } }]))
  })

  it("records nothing when a replace changes nothing", () => {
    assert.deepStrictEqual(when(given(created), command({ _tag: "Put", fields })), Result.succeed([]))
  })

  it("merge-patches (RFC 7396): null removes, objects merge, arrays replace", () => {
    // a note's fields are any JSON object, so nested objects and optional members can be patched
    const context: DecideContext = { entityType: "note", entityId: "n1" }
    const start = note.evolve(note.initialState(), { _tag: "EntityCreated", fields: { a: { x: 1, y: 2 }, b: "keep", c: 1, list: [1, 2] } })
    const decided = note.decide({ _tag: "Patch", patch: { a: { y: null, z: 3 }, c: null, list: [3] } }, start, context)
    const changes = { a: { y: null, z: 3 }, c: null, list: [3] }
    assert.deepStrictEqual(decided, Result.succeed([{ _tag: "EntityUpdated", changes }]))
    const after = note.evolve(start, { _tag: "EntityUpdated", changes })
    // c removed, a merged (y removed, x kept, z added), b untouched, list replaced
    assert.deepStrictEqual(after.fields, { a: { x: 1, z: 3 }, b: "keep", list: [3] })
  })

  it("rejects a patch whose result is invalid, naming the field", () => {
    const result = when(given(created), command({ _tag: "Patch", patch: { bidPrice: null } }))
    assert.isTrue(Result.isFailure(result))
    const error = Result.isFailure(result) ? result.failure : undefined
    assert.strictEqual(error?._tag, "InvalidEntity")
    assert.deepStrictEqual(error?._tag === "InvalidEntity" ? error.issues.map((i) => i.path) : [], [["bidPrice"]])
  })

  it("rejects invalid fields, unknown fields and ids that are not 64-bit unsigned integers", () => {
    const result = when(given(), command({ _tag: "Put", fields: { ...fields, campaignId: "18446744073709551616", extra: 1 } }))
    const paths = Result.isFailure(result) && result.failure._tag === "InvalidEntity" ? result.failure.issues.map((i) => i.path.join(".")) : []
    assert.deepStrictEqual(paths.sort(), ["campaignId", "extra"])
  })

  it("rejects a stale expected revision (If-Match) and names the actual one", () => {
    const result = when(given(created), command({ _tag: "Patch", patch: { name: "x" } }, { expectedRevision: 3 }), 0)
    assert.deepStrictEqual(Result.isFailure(result) ? result.failure._tag : "", "RevisionMismatch")
    assert.strictEqual(Result.isFailure(result) && result.failure._tag === "RevisionMismatch" ? result.failure.actual : -2, 0)
  })

  it("accepts the current expected revision", () => {
    const result = when(given(created), command({ _tag: "Delete" }, { expectedRevision: 0 }), 0)
    assert.deepStrictEqual(result, Result.succeed([{ _tag: "EntityDeleted" }]))
  })

  it("deletes, after which the entity is not found and can be created again", () => {
    const deleted = given(created, { _tag: "EntityDeleted" })
    assert.strictEqual(deleted.status, "deleted")
    assert.strictEqual(deleted.fields, null)
    assert.strictEqual(Result.isFailure(when(deleted, command({ _tag: "Patch", patch: {} }))) ? "rejected" : "", "rejected")
    assert.strictEqual(Result.isFailure(when(deleted, command({ _tag: "Delete" }))) ? "rejected" : "", "rejected")
    assert.deepStrictEqual(when(deleted, command({ _tag: "Put", fields })), Result.succeed([created]))
  })

  it("rejects a parent that the runtime read and found missing; accepts one it found", () => {
    const parent = (exists: boolean) => ({ parent: { type: "campaign", id: fields.campaignId, exists } })
    const result = when(given(), command({ _tag: "Put", fields }), -1, parent(false))
    assert.strictEqual(Result.isFailure(result) ? result.failure._tag : "", "ParentNotFound")
    assert.deepStrictEqual(when(given(), command({ _tag: "Put", fields }), -1, parent(true)), Result.succeed([created]))
    // a patch moving it under a missing campaign too
    const moved = when(given(created), command({ _tag: "Patch", patch: { campaignId: "7" } }), -1, { parent: { type: "campaign", id: "7", exists: false } })
    assert.strictEqual(Result.isFailure(moved) ? moved.failure._tag : "", "ParentNotFound")
  })

  it("names the parent its state belongs to while it lives", () => {
    assert.deepStrictEqual(strategy.parentOf?.(given(created)), { type: "campaign", id: fields.campaignId })
    assert.strictEqual(strategy.parentType, "campaign")
    assert.isUndefined(strategy.parentOf?.(given()))
    assert.isUndefined(strategy.parentOf?.(given(created, { _tag: "EntityDeleted" })))
  })

  it("refuses to delete an entity with live children, naming a few", () => {
    const children = [{ type: "strategy", id: "1" }, { type: "strategy", id: "2" }]
    const result = when(given(created), command({ _tag: "Delete" }), -1, { children })
    assert.isTrue(Result.isFailure(result))
    const error = Result.isFailure(result) ? result.failure : undefined
    assert.deepStrictEqual(error?._tag === "EntityHasChildren" ? [error.children, error.examples] : [], [2, children])
    assert.deepStrictEqual(when(given(created), command({ _tag: "Delete" }), -1, { children: [] }), Result.succeed([{ _tag: "EntityDeleted" }]))
  })

  it("fingerprints what a command asks, whatever the order of its keys", () => {
    const a = fingerprint({ action: { _tag: "Patch", patch: { name: "x", status: "active" } } })
    assert.strictEqual(fingerprint({ action: { _tag: "Patch", patch: { status: "active", name: "x" } } }), a)
    assert.notStrictEqual(fingerprint({ action: { _tag: "Patch", patch: { name: "y", status: "active" } } }), a)
    assert.notStrictEqual(fingerprint({ action: { _tag: "Patch", patch: { name: "x", status: "active" } }, expectedRevision: 3 }), a)
  })

  it("fingerprints as before it stopped building the canonical text: remembered fingerprints still match", () => {
    // the implementation before stop 32, kept here as the reference
    const canonical = (value: unknown): string =>
      Array.isArray(value)
        ? `[${value.map(canonical).join(",")}]`
        : typeof value === "object" && value !== null
        ? `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(",")}}`
        : JSON.stringify(value)
    const before = (command: { action: unknown; expectedRevision?: number; writeOnlyDigest?: string }) => {
      const text = canonical(command.writeOnlyDigest === undefined ? [command.action, command.expectedRevision ?? null] : [command.action, command.expectedRevision ?? null, command.writeOnlyDigest])
      let a = 0x811c9dc5
      let b = 0x01000193 ^ text.length
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i)
        a = Math.imul(a ^ c, 0x01000193)
        b = Math.imul(b ^ c, 0x5bd1e995)
      }
      return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0")
    }
    let seed = 7
    const random = () => (seed = Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5 >>> 0) / 2 ** 32
    const strings = ["", "x", "name", "quo\"te", "back\\slash", "new\nline", "\u0000\u001f", "tab\t", "é日本", "\ud83d\ude00", "\ud800 lone", "lone \udfff", "\u2028", "_tag", "Zed", "a b"]
    const numbers = [0, -0, 1, -1, 0.1, 1e21, 1e-7, Number.MAX_SAFE_INTEGER, NaN, Infinity]
    const value = (depth: number): unknown => {
      const pick = Math.floor(random() * (depth > 3 ? 5 : 8))
      if (pick === 0) return strings[Math.floor(random() * strings.length)]
      if (pick === 1) return numbers[Math.floor(random() * numbers.length)]
      if (pick === 2) return random() < 0.5
      if (pick === 3) return null
      if (pick === 4) return random() < 0.5 ? undefined : String(random())
      if (pick === 5) return Array.from({ length: Math.floor(random() * 5) }, () => value(depth + 1))
      const object: Record<string, unknown> = {}
      for (let i = Math.floor(random() * 6); i > 0; i--) object[strings[Math.floor(random() * strings.length)]! + (random() < 0.3 ? String(i) : "")] = value(depth + 1)
      return object
    }
    const sparse: Array<unknown> = [1]
    sparse[3] = "x"
    const commands = [
      { action: { _tag: "Apply", records: [{ userId: "u1", segmentId: "12", op: "add", source: { partner: "p", line: 3 } }] } },
      { action: { _tag: "Patch", patch: { b: undefined, a: [undefined, null, () => 1] } }, expectedRevision: 4 },
      { action: sparse, writeOnlyDigest: "d" },
      ...Array.from({ length: 2_000 }, () => ({
        action: value(0),
        ...(random() < 0.3 ? { expectedRevision: Math.floor(random() * 10) } : {}),
        ...(random() < 0.2 ? { writeOnlyDigest: strings[Math.floor(random() * strings.length)]! } : {})
      }))
    ]
    for (const command of commands) assert.strictEqual(fingerprint(command as Parameters<typeof fingerprint>[0]), before(command), JSON.stringify(command))
  })
})
