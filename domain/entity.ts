/**
 * What every entity command shares, whatever its type: the bus envelope (`EntityCommand`, whose
 * `action` is the command of the entity type's decider, domain/Decider.ts), the rejections entities
 * answer with, and the fingerprint that tells a retry from a reused command id.
 */
import { Hash, Schema } from "effect"
import { EntityRef } from "./children.ts"
import { FieldIssue } from "./validation.ts"

// Commands -------------------------------------------------------------------------------------

/**
 * Ids travel in NATS headers (HISTORY's `Tributary-Trace-Id` is the correlation id) and in every
 * event's metadata: bounded, so no sender can make the relay's publishes exceed the server's 64 KB
 * header limit and stop HISTORY.
 */
const CommandRef = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(1_024))

/**
 * How an id the platform derives for a command (a wake, a translated batch, a replacement's removal)
 * names its entity: as it is up to 512 characters, past that its first 448 and a hash of the whole, so
 * the command id stays within CommandRef's 1,024. Each entity remembers its own command ids, so the
 * name need only be the same each time, not unique among entities. A user profile's id reaches ~1,370
 * characters (256 outside ASCII, encoded): named whole, the bus refused its commands for ever (stop
 * 26's outside attack: a partner's file job stuck translating with its queue behind it, a real-time POST
 * failed whole, and such a profile's reminders could never be applied).
 */
export const commandIdRef = (entityId: string): string =>
  entityId.length <= 512 ? entityId : `${entityId.slice(0, 448)}#${(Hash.string(entityId) >>> 0).toString(36)}`

export const EntityCommand = Schema.Struct({
  commandId: CommandRef,
  correlationId: CommandRef,
  causationId: Schema.optionalKey(CommandRef),
  entityType: Schema.String,
  entityId: Schema.String,
  /** If-Match: the revision the sender last saw (a safe integer: a larger one could not be compared exactly) */
  expectedRevision: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  /**
   * The revision the platform checked the request against (a bound its change could pass): refused like
   * `expectedRevision` when the entity is elsewhere, but not part of what the command asks (its
   * fingerprint), and such a refusal is not remembered, so the request is checked and sent again under the
   * same id, and a retry of one that was applied is answered what it did, not applied again.
   */
  checkedRevision: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  /**
   * The values at `checkedRevision` of the fields the checks read (null: absent): the command is refused
   * only when one of them differs now, not when any write came between (stop 31; before, ~40 writes a
   * second of a destination's url refused every change of its lanes: stop 30's third attack).
   */
  checkedFields: Schema.optionalKey(Schema.Record(Schema.String, Schema.Json)),
  /**
   * A keyed digest of the request's fields that never reach the entity (a destination's secret headers):
   * part of the fingerprint, so one Idempotency-Key with other such fields is another request (422), not
   * a retry (stop 29's second re-attack: a key reused with other secret headers was answered 200 as a
   * retry while the store took the new ones, and history recorded nothing).
   */
  writeOnlyDigest: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(128))),
  /** the command of the entity type's decider, encoded (e.g. a record's `{ "_tag": "Put", "fields": … }`) */
  action: Schema.Json,
  /** epoch ms after which its sender no longer waits: the entity answers Expired instead of applying it */
  deadline: Schema.optionalKey(Schema.Number)
})
export type EntityCommand = typeof EntityCommand.Type

/**
 * Canonical JSON — object keys sorted, so the same document always reads the same — written as UTF-16
 * code units into one buffer kept between calls rather than built as strings: a fingerprint built its
 * text in pieces, with key arrays and joins, and was a fifth of what ingestion allocated (stop 32).
 */
let units = new Uint16Array(4_096)
let written = 0

const put = (code: number): void => {
  if (written === units.length) grow(1)
  units[written++] = code
}

const grow = (more: number): void => {
  const larger = new Uint16Array(Math.max(units.length * 2, written + more))
  larger.set(units.subarray(0, written))
  units = larger
}

/** `JSON.stringify(text)`, copied as it is when nothing in it is escaped. */
const putString = (text: string): void => {
  if (written + text.length + 2 > units.length) grow(text.length + 2)
  const start = written
  units[written++] = 0x22
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) {
      written = start
      putText(JSON.stringify(text))
      return
    }
    units[written++] = c
  }
  units[written++] = 0x22
}

const putText = (text: string): void => {
  if (written + text.length > units.length) grow(text.length)
  for (let i = 0; i < text.length; i++) units[written++] = text.charCodeAt(i)
}

/** `canonical(value)`'s text; `leftOut`: what it reads where JSON leaves the value out. */
const putCanonical = (value: unknown, leftOut: string): void => {
  if (value === undefined || typeof value === "function" || typeof value === "symbol") {
    putText(leftOut)
  } else if (Array.isArray(value)) {
    put(0x5b)
    for (let i = 0; i < value.length; i++) {
      if (i > 0) put(0x2c)
      // as `map` and `join` did: a hole, or a value JSON leaves out, is empty
      if (i in value) putCanonical(value[i], "")
    }
    put(0x5d)
  } else if (typeof value === "object" && value !== null) {
    put(0x7b)
    const keys = Object.keys(value).sort()
    for (let i = 0; i < keys.length; i++) {
      if (i > 0) put(0x2c)
      putString(keys[i]!)
      put(0x3a)
      // as the template did: a value JSON leaves out reads `undefined`
      putCanonical((value as Record<string, unknown>)[keys[i]!], "undefined")
    }
    put(0x7d)
  } else if (typeof value === "string") {
    putString(value)
  } else {
    putText(JSON.stringify(value))
  }
}

/** `value`'s canonical JSON into `units[0, written)`. */
const writeCanonical = (value: unknown): void => {
  written = 0
  putCanonical(value, "")
}

/** A buffer grown by one huge document is not kept. */
const shrink = (): void => {
  if (units.length > 1 << 20) units = new Uint16Array(4_096)
}

/** `value`'s canonical JSON as text. */
const canonical = (value: unknown): string => {
  writeCanonical(value)
  let text = ""
  for (let i = 0; i < written; i += 8_192) text += String.fromCharCode(...units.subarray(i, Math.min(written, i + 8_192)))
  shrink()
  return text
}

/**
 * Whether the entity is still as the command was checked against (EntityCommand.checkedRevision): at
 * that revision, or with the same values of the fields the checks read (`fields`: the entity's fields
 * now, computed only when asked).
 */
export const stillAsChecked = (command: Pick<EntityCommand, "checkedRevision" | "checkedFields">, revision: number, fields: () => unknown): boolean => {
  if (command.checkedRevision === undefined || command.checkedRevision === revision) return true
  if (command.checkedFields === undefined) return false
  const now = fields()
  const record = typeof now === "object" && now !== null && !Array.isArray(now) ? now as Readonly<Record<string, unknown>> : {}
  return Object.entries(command.checkedFields).every(([name, value]) => canonical(record[name] ?? null) === canonical(value))
}

/**
 * A short fingerprint of what a command asks — its action and expected revision, whatever the order
 * of their keys (FNV-1a, 2 × 32 bits, over their canonical JSON) — so a command id reused for a
 * different request is recognised. Not cryptographic: it guards against mistakes. Remembered
 * fingerprints are kept with command ids, so its value must not change.
 */
export const fingerprint = (command: Pick<EntityCommand, "action" | "expectedRevision" | "writeOnlyDigest">): string => {
  // without a digest, as before it existed: commands remembered from then keep their fingerprints
  writeCanonical(command.writeOnlyDigest === undefined ? [command.action, command.expectedRevision ?? null] : [command.action, command.expectedRevision ?? null, command.writeOnlyDigest])
  let a = 0x811c9dc5
  let b = 0x01000193 ^ written
  for (let i = 0; i < written; i++) {
    const c = units[i]!
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
  }
  shrink()
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0")
}

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

/** The entity still has live children (campaigns of this advertiser): they go first. `examples` names a few. */
export class EntityHasChildren extends Schema.TaggedError<EntityHasChildren>()("EntityHasChildren", {
  entityType: Schema.String,
  entityId: Schema.String,
  children: Schema.Int,
  examples: Schema.Array(EntityRef)
}) {}

/** A command id (an Idempotency-Key) seen before with a different request. */
export class CommandIdReused extends Schema.TaggedError<CommandIdReused>()("CommandIdReused", {
  commandId: Schema.String
}) {}

/** The command does not decode with its entity type's command schema. */
export class InvalidCommand extends Schema.TaggedError<InvalidCommand>()("InvalidCommand", {
  entityType: Schema.String,
  issues: Schema.Array(FieldIssue)
}) {}

/** The decider refused the command by a rule of its type (a counter that may not go below zero). */
export class CommandRefused extends Schema.TaggedError<CommandRefused>()("CommandRefused", {
  entityType: Schema.String,
  entityId: Schema.String,
  reason: Schema.String
}) {}

/** The command takes more bytes than a message on the bus carries (the NATS server's max_payload): never sent. */
export class CommandTooLarge extends Schema.TaggedError<CommandTooLarge>()("CommandTooLarge", {
  entityType: Schema.String,
  entityId: Schema.String,
  bytes: Schema.Int,
  maxBytes: Schema.Int
}) {}

export const EntityRejection = Schema.Union([
  EntityNotFound,
  RevisionMismatch,
  InvalidEntity,
  ParentNotFound,
  EntityHasChildren,
  CommandIdReused,
  InvalidCommand,
  CommandRefused,
  CommandTooLarge
])
export type EntityRejection = typeof EntityRejection.Type
