/**
 * Partners (issue 7, item 1): a record (domain/entities/record.ts) — name, status, input format
 * spec, segment map, default membership TTL — with history and asOf like any entity, plus one
 * command of its own: `RecordCredentialsChange`, sent by the credentials admin route. The secrets
 * live in their own store (domain/ingest/PartnerCredentials.ts); the partner's history records only
 * that they changed: whether there is a password and how many SSH keys, never a value.
 */
import { type Option, Result, Schema } from "effect"
import { decider } from "../Decider.ts"
import { EntityNotFound } from "../entity.ts"
import { AllowedSegments, FormatSpec, PartnerConfig, SegmentMap } from "../ingest/FormatSpec.ts"
import { TtlSeconds } from "../ingest/LoaderRecord.ts"
import { IsoDateTime } from "../isoDateTime.ts"
import { Name } from "./fields.ts"
import { Delete, EntityCreated, EntityDeleted, EntityUpdated, Patch, Put, recordDecider, RecordState } from "./record.ts"

/** A lowercase slug: it becomes NATS subject tokens, consumer names and the FTP/SFTP login. */
export const PartnerId = Schema.String.check(Schema.isPattern(/^[a-z][a-z0-9-]{0,62}$/, {
  identifier: "PartnerId",
  description: "lowercase slug: a letter, then up to 62 letters, digits or '-'",
  examples: ["acme-data"]
}))

type Fields = {
  readonly formatSpec?: FormatSpec | undefined
  readonly segmentMap?: SegmentMap | undefined
  readonly allowedSegments?: ReadonlyArray<string> | undefined
}

/**
 * A spec needs a segment map, the codes of a one-column-per-segment spec must all be mapped, and a
 * partner told which segments it may feed maps codes to those alone.
 */
const mapped = (partner: Fields): ReadonlyArray<Schema.FilterIssue> => {
  const allowed = partner.allowedSegments === undefined ? undefined : new Set(partner.allowedSegments)
  const outside = allowed === undefined ? [] : Object.entries(partner.segmentMap ?? {}).flatMap(([code, segment]) =>
    allowed.has(segment) ? [] : [{ path: ["segmentMap", code], issue: `segment ${segment} is not in allowedSegments` }])
  if (outside.length > 0) return outside
  const spec = partner.formatSpec
  if (spec === undefined) return []
  if (partner.segmentMap === undefined) return [{ path: ["segmentMap"], issue: "a partner with a formatSpec needs a segmentMap (its codes → platform segment ids)" }]
  const map = partner.segmentMap
  return spec.segments.kind !== "columns" ? [] : spec.segments.columns.flatMap((c, i) =>
    Object.hasOwn(map, c.code) ? [] : [{ path: ["formatSpec", "segments", "columns", i, "code"], issue: `segment code ${JSON.stringify(c.code)} is not in segmentMap` }])
}

export const Partner = Schema.Struct({
  name: Name,
  status: Schema.optionalKey(Schema.Literals(["active", "paused"]).annotate({ description: "a paused partner's uploads are refused; default active" })),
  /** without it, the partner sends loader-format JSON Lines only */
  formatSpec: Schema.optionalKey(FormatSpec),
  segmentMap: Schema.optionalKey(SegmentMap),
  /** for records that carry no TTL of their own */
  defaultTtlSeconds: Schema.optionalKey(TtlSeconds),
  /** the platform segments it may feed (loader records and segment map alike); absent: any */
  allowedSegments: Schema.optionalKey(AllowedSegments)
}).check(Schema.makeFilter(mapped)).annotate({ identifier: "Partner" })
export type Partner = typeof Partner.Type

/** Sent by `PUT /v1/admin/partners/{id}/credentials` after the secret store changed. */
const credentialsChange = {
  password: Schema.Boolean,
  sshPublicKeys: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  /** when the store changed (the command carries time: deciding stays deterministic) */
  at: Schema.optionalKey(IsoDateTime)
}
export const RecordCredentialsChange = Schema.TaggedStruct("RecordCredentialsChange", credentialsChange)
export const CredentialsChanged = Schema.TaggedStruct("CredentialsChanged", credentialsChange)

export const PartnerCommand = Schema.Union([Put, Patch, Delete, RecordCredentialsChange])
export type PartnerCommand = typeof PartnerCommand.Type
export const PartnerEvent = Schema.Union([EntityCreated, EntityUpdated, EntityDeleted, CredentialsChanged])
export type PartnerEvent = typeof PartnerEvent.Type

/** Which credentials the partner has (never their values), as the public state shows them. */
export const CredentialsState = Schema.Struct({
  password: Schema.Boolean,
  sshPublicKeys: Schema.Int,
  changedAt: Schema.optionalKey(Schema.String)
})

export const PartnerState = Schema.Struct({ ...RecordState.fields, credentials: Schema.optionalKey(CredentialsState) })
export type PartnerState = typeof PartnerState.Type

const record = recordDecider({ type: "partner", id: PartnerId, fields: Partner })

/**
 * The record's commands and events as they are; the credentials change on top. The fields' schema
 * stays the PUT body, so `credentials` is read-only: set through the admin route, shown in the state.
 */
const base = decider<PartnerCommand, PartnerEvent, PartnerState>({
  ...record,
  command: PartnerCommand,
  event: PartnerEvent,
  state: PartnerState,
  decide: (command, state, context) => {
    if (command._tag !== "RecordCredentialsChange") return record.decide(command, state, context)
    if (state.status !== "live") return Result.fail(new EntityNotFound({ entityType: context.entityType, entityId: context.entityId }))
    return Result.succeed([CredentialsChanged.make({ password: command.password, sshPublicKeys: command.sshPublicKeys, ...(command.at === undefined ? {} : { at: command.at }) })])
  },
  evolve: (state, event) => {
    if (event._tag === "CredentialsChanged") {
      return { ...state, credentials: { password: event.password, sshPublicKeys: event.sshPublicKeys, ...(event.at === undefined ? {} : { changedAt: event.at }) } }
    }
    // the secret store keeps a partner's credentials through a delete, so its state does too
    const next = record.evolve(state, event)
    return state.credentials === undefined ? next : { ...next, credentials: state.credentials }
  },
  toJson: (state) => {
    const fields = record.toJson(state)
    return fields === null || state.credentials === undefined ? fields : { ...fields, credentials: state.credentials }
  },
  outcomes: { ...record.outcomes, CredentialsChanged: "updated" },
  staleRevision: (command, state, context) =>
    command._tag === "RecordCredentialsChange" ? undefined : record.staleRevision?.(command, state, context)
})

export const partner = { ...base, fields: record.fields }

const decodeConfig = Schema.decodeUnknownOption(PartnerConfig)

/**
 * What translating a partner's files needs, from its entity state (GET /v1/entities/partner/{id}'s
 * `state`); none when it has no format spec: it then sends loader-format JSON Lines only.
 */
export const partnerConfigOf = (state: unknown): Option.Option<PartnerConfig> => decodeConfig(state)
