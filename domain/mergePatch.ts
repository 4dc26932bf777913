/**
 * JSON Merge Patch (RFC 7396): applying a patch, and computing the smallest patch between two
 * documents (used to record only the changed fields in EntityUpdated).
 */
import type { Schema } from "effect"

type Json = Schema.Json
type JsonObject = Schema.JsonObject

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** RFC 7396 §2: null removes a member, objects merge recursively, anything else replaces. */
export const applyMergePatch = (target: Json, patch: Json): Json => {
  if (!isObject(patch)) return patch
  const result: Record<string, Json> = isObject(target) ? { ...target } : {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key]
    else result[key] = applyMergePatch(result[key] ?? null, value)
  }
  return result
}

const equal = (a: Json, b: Json): boolean => {
  if (a === b) return true
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]!))
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a)
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && equal(a[k]!, b[k]!))
  }
  return false
}

/** The smallest merge patch p with applyMergePatch(from, p) = to, for objects (empty when equal). */
export const diffMergePatch = (from: JsonObject, to: JsonObject): JsonObject => {
  const patch: Record<string, Json> = {}
  for (const key of Object.keys(from)) if (!(key in to)) patch[key] = null
  for (const [key, value] of Object.entries(to)) {
    const before = from[key]
    if (before === undefined) patch[key] = value
    else if (isObject(before) && isObject(value)) {
      const inner = diffMergePatch(before, value)
      if (Object.keys(inner).length > 0) patch[key] = inner
    } else if (!equal(before, value)) patch[key] = value
  }
  return patch
}
