/**
 * The common loader format (DESIGN.md: partner ingestion): what every partner format is translated
 * into, whatever door it came through. A partner without a format spec can always send it directly,
 * as JSON Lines, in a real-time POST or a file. Public contract: partners, SDKs and delivery build on it.
 *
 * A user is one profile per id kind: ids are normalised per kind (`normalizeUserId`) before they
 * become the profile's id (`profileId`), so `AB-CD` and `ab-cd` as mobile ad ids are one person.
 */
import { Result, Schema } from "effect"
import { Uint64String } from "../ids.ts"
import { BoundedIsoDateTime } from "../isoDateTime.ts"

export const IdKind = Schema.Literals(["cookie", "maid", "email_sha256", "phone_sha256", "customer"]).annotate({
  identifier: "IdKind",
  description: "cookie · maid (mobile ad id, lower-cased) · email_sha256 / phone_sha256 (lower-case hex) · customer (the partner's own id)"
})
export type IdKind = typeof IdKind.Type

export const Operation = Schema.Literals(["add", "remove"])
export type Operation = typeof Operation.Type

/** At most a year; a longer membership is renewed by sending it again. */
export const TtlSeconds = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1), Schema.isLessThanOrEqualTo(366 * 86_400))

/** User ids are bounded: they become entity ids, stream names and subject tokens. */
export const UserId = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(256))

/** One membership change, as partners send it (the JSON Lines contract). */
export const LoaderRecord = Schema.Struct({
  idKind: IdKind,
  userId: UserId,
  segmentId: Uint64String,
  op: Operation,
  time: BoundedIsoDateTime,
  ttlSeconds: Schema.optionalKey(TtlSeconds)
}).annotate({ identifier: "LoaderRecord" })
export type LoaderRecord = typeof LoaderRecord.Type

/** Where a record came from: the partner, its job (upload), the upload's digest and the line in it (from 1). */
export const RecordSource = Schema.Struct({
  partner: Schema.String,
  jobId: Schema.String,
  /** sha256 (hex) of the upload; a real-time job's is derived from its job id */
  digest: Schema.String,
  line: Schema.Int
}).annotate({ identifier: "RecordSource" })
export type RecordSource = typeof RecordSource.Type

/** A translated record with its source: what the translator sends to the user profile shards. */
export const SourcedRecord = Schema.Struct({ ...LoaderRecord.fields, source: RecordSource })
export type SourcedRecord = typeof SourcedRecord.Type

const hasControlCharacter = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) return true
  }
  return false
}

/** A lone surrogate: UTF-8 writes it as U+FFFD, so two such ids would be one profile (the re-attack of stop 26). */
const loneSurrogate = /\p{Cs}/u

const hex64 = /^[0-9a-f]{64}$/
const maid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * The user id as its kind writes it, so one person is one profile: mobile ad ids lower-cased (and
 * shaped as a UUID), hashed emails and phones lower-case hex of 64 digits, others trimmed. Fails
 * with why (the per-line error).
 */
export const normalizeUserId = (kind: IdKind, raw: string): Result.Result<string, string> => {
  const id = raw.trim()
  if (id.length === 0) return Result.fail("empty user id")
  if (id.length > 256) return Result.fail("user id longer than 256 characters")
  if (loneSurrogate.test(id)) return Result.fail("user id: not well-formed Unicode (a lone surrogate such as \\ud800)")
  switch (kind) {
    case "maid": {
      const lower = id.toLowerCase()
      return maid.test(lower) ? Result.succeed(lower) : Result.fail("a mobile ad id is a UUID (8-4-4-4-12 hex digits)")
    }
    case "email_sha256":
    case "phone_sha256": {
      const lower = id.toLowerCase()
      return hex64.test(lower) ? Result.succeed(lower) : Result.fail(`${kind} is a SHA-256 digest: 64 hex digits`)
    }
    case "cookie":
    case "customer":
      return hasControlCharacter(id) ? Result.fail("control characters in the user id") : Result.succeed(id)
  }
}

/** Ids kept as they are in subjects and stream names; anything else is encoded. */
const safeId = /^[A-Za-z0-9_=-]+$/

/**
 * The profile's entity id `<kind>:<user id>` (DESIGN.md: ids). A user id that is not a safe NATS
 * subject token (a `.`, `*`, `>`, space, non-ASCII, …) is written `~` + base64url of its UTF-8, which
 * no safe id starts with, so the encoding is one-to-one.
 */
export const profileId = (kind: IdKind, userId: string): string =>
  `${kind}:${safeId.test(userId) ? userId : `~${Buffer.from(userId, "utf8").toString("base64url")}`}`

/** The kind and user id of a profile's entity id; none when it is not one. */
export const parseProfileId = (id: string): { readonly idKind: IdKind; readonly userId: string } | undefined => {
  const colon = id.indexOf(":")
  const kind = id.slice(0, colon)
  if (colon < 0 || !Schema.is(IdKind)(kind)) return undefined
  const rest = id.slice(colon + 1)
  const userId = rest.startsWith("~") ? Buffer.from(rest.slice(1), "base64url").toString("utf8") : rest
  return userId.length === 0 ? undefined : { idKind: kind, userId }
}
