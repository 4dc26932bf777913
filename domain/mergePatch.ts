/**
 * JSON Merge Patch (RFC 7396): applying a patch, and computing the smallest patch between two
 * documents (used to record only the changed fields in EntityUpdated).
 *
 * Keys come from clients, so any name is data: `constructor`, `toString` and `__proto__` are fields
 * like any other. Members are looked up as own properties only (never inherited ones), and results
 * are built from entries (`Object.fromEntries` defines own properties; assigning `__proto__` would
 * set the prototype instead and lose the field).
 */
import type { Schema } from "effect"

type Json = Schema.Json
type JsonObject = Schema.JsonObject

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The member `key` of `object` itself; undefined when it has none (whatever Object.prototype has). */
const own = (object: JsonObject, key: string): Json | undefined => Object.hasOwn(object, key) ? object[key] : undefined

/** RFC 7396 §2: null removes a member, objects merge recursively, anything else replaces. */
export const applyMergePatch = (target: Json, patch: Json): Json => {
  if (!isObject(patch)) return patch
  const result = new Map<string, Json>(isObject(target) ? Object.entries(target) : [])
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) result.delete(key)
    else result.set(key, applyMergePatch(result.get(key) ?? null, value))
  }
  return Object.fromEntries(result)
}

const equal = (a: Json, b: Json): boolean => {
  if (a === b) return true
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]!))
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a)
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && equal(a[k]!, b[k]!))
  }
  return false
}

/** The smallest merge patch p with applyMergePatch(from, p) = to, for objects (empty when equal). */
export const diffMergePatch = (from: JsonObject, to: JsonObject): JsonObject => {
  const patch = new Map<string, Json>()
  for (const key of Object.keys(from)) if (!Object.hasOwn(to, key)) patch.set(key, null)
  for (const [key, value] of Object.entries(to)) {
    const before = own(from, key)
    if (before === undefined) patch.set(key, value)
    else if (isObject(before) && isObject(value)) {
      const inner = diffMergePatch(before, value)
      if (Object.keys(inner).length > 0) patch.set(key, inner)
    } else if (!equal(before, value)) patch.set(key, value)
  }
  return Object.fromEntries(patch)
}
