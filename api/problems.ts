/**
 * RFC 9457 problem details: every HTTP error the API answers, in one table. Routes fail with tagged
 * errors; this table alone decides their status, stable code and title.
 */
import { Schema } from "effect"
import { cutText } from "../domain/cutText.ts"
import { FieldIssue } from "../domain/validation.ts"

export const RequestPart = Schema.Literals(["path", "query", "header", "body"])

/** Request parts failed to decode; `issues` name every failing field and the part it is in. */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  issues: Schema.Array(Schema.Struct({ in: RequestPart, ...FieldIssue.fields }))
}) {}
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", { detail: Schema.String }) {}
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", { detail: Schema.String }) {}
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { detail: Schema.String }) {}
/** The entity answered that it could not process the command (its store failed); the outcome is unknown. */
export class CommandFailed extends Schema.TaggedError<CommandFailed>()("CommandFailed", { detail: Schema.String }) {}
/** A request body over its route's limit (`limitBytes`); the rest of it is not read. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", { detail: Schema.String, limitBytes: Schema.Number }) {}
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()("UnsupportedMediaType", { detail: Schema.String }) {}
/** The client stopped sending a streamed body before its end (or sent a corrupt gzip body). */
export class RequestBodyFailed extends Schema.TaggedError<RequestBodyFailed>()("RequestBodyFailed", { detail: Schema.String }) {}
/** A request (or a streamed body) that did not arrive in time: too slow, or stalled. */
export class RequestTimeout extends Schema.TaggedError<RequestTimeout>()("RequestTimeout", { detail: Schema.String }) {}
/** This API key used up its token bucket; `retryAfterSeconds` until it holds enough again. */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", { detail: Schema.String, retryAfterSeconds: Schema.Number }) {}
/**
 * A configured bound of what the platform keeps (DELIVERY_MAX_LANES, say) would be passed: `issues` name
 * the request's field that would pass it. Retrying changes nothing until something else gives its share back.
 */
export class LimitReached extends Schema.TaggedError<LimitReached>()("LimitReached", {
  detail: Schema.String,
  issues: Schema.Array(FieldIssue)
}) {}
/**
 * Not now: too much in flight, a backlog over its bound, or a turn other requests hold; answered with
 * Retry-After instead of queueing without bound. `detail` says which.
 */
export class Overloaded extends Schema.TaggedError<Overloaded>()("Overloaded", { detail: Schema.String, retryAfterSeconds: Schema.Number }) {}

interface ProblemType {
  readonly status: number
  readonly code: string
  readonly title: string
  readonly retryAfterSeconds?: number
}

/** Error tag → problem. A tag missing here is a bug and answers 500. */
export const problemTypes: Record<string, ProblemType> = {
  InvalidRequest: { status: 400, code: "invalid-request", title: "The request is invalid" },
  InvalidEntity: { status: 400, code: "invalid-entity", title: "The entity's fields are invalid" },
  RequestBodyFailed: { status: 400, code: "request-body-failed", title: "The request body could not be read to its end" },
  InvalidCommand: { status: 400, code: "invalid-command", title: "The command is not one this entity type accepts" },
  Unauthorized: { status: 401, code: "unauthorized", title: "A valid API key is required" },
  Forbidden: { status: 403, code: "forbidden", title: "This API key may not do this" },
  NotFound: { status: 404, code: "not-found", title: "Not found" },
  MethodNotAllowed: { status: 405, code: "method-not-allowed", title: "The route does not take this method; see Allow" },
  EntityNotFound: { status: 404, code: "entity-not-found", title: "The entity does not exist" },
  CommandRefused: { status: 409, code: "command-refused", title: "The entity's rules refuse this command" },
  PartnerPaused: { status: 409, code: "partner-paused", title: "The partner is paused: it takes no new data" },
  EntityHasChildren: { status: 409, code: "entity-has-children", title: "The entity still has live children; delete or move them first" },
  LimitReached: { status: 409, code: "limit-reached", title: "A configured limit of the platform would be passed" },
  LastAdminKey: { status: 409, code: "last-admin-key", title: "This would leave no admin key" },
  RevisionMismatch: { status: 412, code: "revision-mismatch", title: "The entity has changed since the given revision" },
  RequestTimeout: { status: 408, code: "request-timeout", title: "The request did not arrive in time" },
  PayloadTooLarge: { status: 413, code: "payload-too-large", title: "The request body is too large" },
  UploadTooLarge: { status: 413, code: "payload-too-large", title: "The request body is too large" },
  CommandTooLarge: { status: 413, code: "command-too-large", title: "The command is larger than the message bus carries" },
  UploadsFull: { status: 507, code: "insufficient-storage", title: "The platform's disk is too full to take uploads now", retryAfterSeconds: 60 },
  UnsupportedMediaType: { status: 415, code: "unsupported-media-type", title: "Unsupported content type" },
  HeadersTooLarge: { status: 431, code: "headers-too-large", title: "The request's headers are too large" },
  ParentNotFound: { status: 422, code: "parent-not-found", title: "The entity's parent does not exist" },
  InvalidCredentials: { status: 422, code: "invalid-credentials", title: "The credentials are not acceptable" },
  CommandIdReused: { status: 422, code: "idempotency-key-reused", title: "This Idempotency-Key was used for a different request" },
  RateLimited: { status: 429, code: "rate-limited", title: "This API key sent too many requests; retry later", retryAfterSeconds: 1 },
  // one code for every "not now": requests in flight, a backlog over its bound, a turn held elsewhere; `detail` says which
  Overloaded: { status: 503, code: "overloaded", title: "The platform cannot take this request now (detail says why); retry after Retry-After", retryAfterSeconds: 1 },
  CommandFailed: { status: 503, code: "command-failed", title: "The entity could not process the command; retry with the same Idempotency-Key", retryAfterSeconds: 1 },
  CommandBusError: { status: 503, code: "bus-unavailable", title: "The message bus is unavailable", retryAfterSeconds: 2 },
  EventStoreError: { status: 503, code: "store-unavailable", title: "The event store is unavailable", retryAfterSeconds: 2 },
  ReadModelError: { status: 503, code: "read-model-unavailable", title: "The read model is unavailable", retryAfterSeconds: 2 },
  ApiKeysError: { status: 503, code: "keys-unavailable", title: "The key store is unavailable", retryAfterSeconds: 2 },
  UploadsError: { status: 503, code: "uploads-unavailable", title: "The upload store is unavailable", retryAfterSeconds: 2 },
  IngestJobsError: { status: 503, code: "jobs-unavailable", title: "The ingestion jobs ledger is unavailable", retryAfterSeconds: 2 },
  IntakeError: { status: 503, code: "ingest-unavailable", title: "Ingestion cannot take this now; retry later", retryAfterSeconds: 5 },
  CredentialsError: { status: 503, code: "credentials-unavailable", title: "The credentials store is unavailable", retryAfterSeconds: 2 },
  SecretsError: { status: 503, code: "secrets-unavailable", title: "The delivery secrets store is unavailable", retryAfterSeconds: 2 },
  SecretsUndecryptable: { status: 503, code: "secrets-undecryptable", title: "A stored secret does not decrypt with the configured key", retryAfterSeconds: 60 },
  DeadLettersError: { status: 503, code: "dead-letters-unavailable", title: "The dead letters cannot be read now", retryAfterSeconds: 2 },
  DeadLetterQueueError: { status: 503, code: "dead-letters-unavailable", title: "The dead letters cannot be read now", retryAfterSeconds: 2 },
  DeliveryBacklogError: { status: 503, code: "delivery-unavailable", title: "DELIVER is full or unavailable; retry later", retryAfterSeconds: 5 },
  DelivererStatusesError: { status: 503, code: "delivery-status-unavailable", title: "The delivery status cannot be read now", retryAfterSeconds: 2 },
  CommandTimeout: { status: 504, code: "command-timeout", title: "The entity did not answer in time; retry with the same Idempotency-Key" }
}

export const FieldProblem = Schema.Struct({
  in: Schema.String,
  /** JSON Pointer (RFC 6901) into the request part */
  pointer: Schema.String,
  message: Schema.String
})

export const Problem = Schema.Struct({
  type: Schema.String,
  title: Schema.String,
  status: Schema.Int,
  code: Schema.String,
  detail: Schema.optionalKey(Schema.String),
  instance: Schema.optionalKey(Schema.String),
  errors: Schema.optionalKey(Schema.Array(FieldProblem))
}).annotate({ identifier: "Problem" })
export type Problem = typeof Problem.Type

const pointer = (path: ReadonlyArray<string | number>) =>
  "/" + path.map((p) => String(p).replaceAll("~", "~0").replaceAll("/", "~1")).join("/")

/**
 * Characters of a problem's `instance`, `detail` and each field message at most: each may quote what the
 * client sent (a 15 KB path was echoed twice, as `instance` and in the router's message: a 30 KB answer).
 */
export const maxEchoChars = 1_024

const fieldProblems = (issues: ReadonlyArray<FieldIssue & { readonly in: string }>) =>
  issues.map((issue) => ({ in: issue.in, pointer: cutText(pointer(issue.path), maxEchoChars), message: cutText(issue.message, maxEchoChars) }))

/** The problem for a tagged error (plus the Retry-After seconds where the client should come back). */
export const toProblem = (error: { readonly _tag: string } & Record<string, unknown>, instance: string): { problem: Problem; retryAfter?: number } => {
  const type = problemTypes[error._tag] ?? { status: 500, code: "internal", title: "Internal error" }
  const errors = error._tag === "InvalidRequest"
    ? fieldProblems(error.issues as InvalidRequest["issues"])
    : error._tag === "InvalidEntity" || error._tag === "InvalidCommand" || error._tag === "InvalidCredentials" || error._tag === "LimitReached"
    ? fieldProblems((error.issues as ReadonlyArray<FieldIssue>).map((issue) => ({ ...issue, in: "body" })))
    : undefined
  const detail = typeof error.detail === "string" ? error.detail : detailOf(error)
  const retryAfter = typeof error.retryAfterSeconds === "number" ? error.retryAfterSeconds : type.retryAfterSeconds
  return {
    problem: {
      type: `urn:tributary:problem:${type.code}`,
      title: type.title,
      status: type.status,
      code: type.code,
      ...(detail === undefined ? {} : { detail: cutText(detail, maxEchoChars) }),
      instance: cutText(instance, maxEchoChars),
      ...(errors === undefined ? {} : { errors })
    },
    ...(retryAfter === undefined ? {} : { retryAfter })
  }
}

const detailOf = (error: Record<string, unknown>): string | undefined => {
  switch (error._tag) {
    case "EntityNotFound": return `${error.entityType} ${error.entityId} does not exist`
    case "RevisionMismatch": return `expected revision ${error.expected}, the entity is at revision ${error.actual}`
    case "CommandRefused": return `${error.entityType} ${error.entityId}: ${error.reason}`
    case "ParentNotFound": return `${error.field}: ${error.parentType} ${error.parentId} does not exist`
    case "EntityHasChildren": {
      const examples = (error.examples as ReadonlyArray<{ readonly type: string; readonly id: string }>).map((c) => `${c.type} ${c.id}`)
      return `${error.entityType} ${error.entityId} has ${error.children} live children (${examples.join(", ")}${error.children as number > examples.length ? ", …" : ""})`
    }
    case "CommandTimeout":
      // 0: the entity answered that the command came past its deadline, and did not apply it
      return error.timeoutMillis === 0
        ? `command ${error.commandId}: it reached its entity past its deadline and was not applied; send it again`
        : `command ${error.commandId}: no answer within ${error.timeoutMillis} ms`
    case "CommandTooLarge": return `${error.entityType} ${error.entityId}: the command takes ${error.bytes} bytes, more than a message on the bus carries (${error.maxBytes}); send less at once`
    case "UploadTooLarge": return `an upload takes at most ${error.maxBytes} bytes; nothing of it was kept`
    case "UploadsFull": return `the disk under DATA_DIR has ${error.freeBytes} bytes free, under the ${error.minFreeBytes} kept for the platform (UPLOADS_MIN_FREE_BYTES); nothing of the upload was kept`
    case "PartnerPaused": return `partner ${error.partner} is paused`
    case "IntakeError": return String(error.operation)
    case "CommandBusError":
    case "EventStoreError":
    case "ReadModelError":
    case "ApiKeysError":
    case "UploadsError":
    case "IngestJobsError":
    case "CredentialsError":
    case "SecretsError":
    case "DeadLetterQueueError":
    case "DeliveryBacklogError":
    case "DelivererStatusesError": return `${error.operation} failed`
    default: return undefined
  }
}

/** A route's documented problem answer (OpenAPI). */
export const problemResponse = (description: string) => ({ description, schema: Problem, contentType: "application/problem+json" })
