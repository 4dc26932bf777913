/**
 * Destinations (issue 9, item 1): where a partner receives the platform's segment memberships — a
 * record belonging to a partner (its `partnerId` must exist), with history and asOf like any entity.
 * On top of Put/Patch/Delete, two commands of its own:
 * - `RecordSecretsChange`: the secret headers (credentials sent to the partner) live encrypted in
 *   their own store (domain/delivery/DestinationSecrets.ts); history records only their names.
 * - `DiscardDeadLetter`: a dead letter thrown away by a person, the reason kept in history.
 * - `RecordDeliveryDropped`: what a deleted destination still had on DLQ and DELIVER, thrown away so
 *   that a destination created later under its id (maybe another partner's) never receives it.
 */
import { Result, Schema } from "effect"
import { decider } from "../Decider.ts"
import { EntityNotFound } from "../entity.ts"
import { Uint64String } from "../ids.ts"
import { IsoDateTime } from "../isoDateTime.ts"
import { StrictRecord } from "../strictRecord.ts"
import { HeaderName, HeaderValue, headerIssues } from "./headers.ts"
import { PartnerId } from "./partner.ts"
import { Delete, EntityCreated, EntityDeleted, EntityUpdated, Patch, Put, recordDecider, RecordState } from "./record.ts"

/** A lowercase slug: it becomes a NATS subject token (`deliver.<destination>.<lane>`) and a KV key. */
export const DestinationId = Schema.String.check(Schema.isPattern(/^[a-z][a-z0-9-]{0,62}$/, {
  identifier: "DestinationId",
  description: "lowercase slug: a letter, then up to 62 letters, digits or '-'",
  examples: ["acme-dsp"]
}))

/** Plain headers, kept in history (readable by auditors): nothing secret. */
export const Headers = StrictRecord(HeaderName, HeaderValue, { description: "sent with every request; kept in history, so nothing secret (see secretHeaders)" })

/**
 * An IPv6 address as its eight 16-bit groups (`::` expanded, a zone id dropped, a trailing dotted
 * IPv4 part as two groups), or undefined when `host` is not one.
 */
const ipv6Groups = (host: string): ReadonlyArray<number> | undefined => {
  if (!host.includes(":")) return undefined
  let text = host.replace(/%.*$/, "")
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(2).map(Number) as [number, number, number, number]
    if ([a, b, c, d].some((n) => n > 255)) return undefined
    text = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const halves = text.split("::")
  if (halves.length > 2) return undefined
  const part = (half: string) => (half === "" ? [] : half.split(":"))
  const head = part(halves[0]!)
  const tail = halves.length === 2 ? part(halves[1]!) : []
  const missing = 8 - head.length - tail.length
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail]
  if (groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined
  return groups.map((g) => parseInt(g, 16))
}

const forbiddenV4 = ([a, b, c, d]: ReadonlyArray<number>): string | undefined => {
  if (a === 169 && b === 254) return "a link-local address (cloud metadata)"
  if (a === 100 && b === 100 && c === 100 && d === 200) return "a cloud metadata service (Alibaba Cloud)"
  if (a === 0) return "the unspecified address"
  return undefined
}

/**
 * Hosts no partner lives on and that answer secrets to whoever asks: the cloud metadata services
 * (169.254.169.254 and the rest of IPv4 link-local, IPv6 link-local fe80::/10, AWS's IPv6 fd00:ec2::254,
 * Google Cloud's fd20:ce::254, Alibaba Cloud's 100.100.100.200, metadata.google.internal) and the
 * unspecified address (0.0.0.0, ::, which connect to this host); an IPv4 address also in its IPv6 forms
 * (IPv4-mapped `::ffff:…`, hex or dotted as resolvers write it; IPv4-compatible `::…`; NAT64
 * `64:ff9b::…`; SIIT `::ffff:0:…`; 6to4 `2002:…::`). A destination pointing
 * there would make the platform fetch credentials and show the answer in its dead letters. Loopback and
 * private ranges stay allowed (partners on the operator's own network, simulators in tests); keep the
 * platform's port off them with the network's own policy. Checked on the URL and again on every
 * address a name resolves to when connecting (infra/delivery/partnerHttp.ts).
 */
export const forbiddenHost = (hostname: string): string | undefined => {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "")
  if (host === "metadata.google.internal" || host === "metadata") return "a cloud metadata service"
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(host)?.slice(1).map(Number)
  if (v4 !== undefined) return forbiddenV4(v4)
  const g = ipv6Groups(host)
  if (g === undefined) return undefined
  if (g.every((x) => x === 0)) return "the unspecified address"
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0)
  // mapped ::ffff:a.b.c.d; compatible ::a.b.c.d (not ::1, loopback); NAT64 64:ff9b::a.b.c.d; SIIT
  // ::ffff:0:a.b.c.d (stop 28's outside attack)
  const embedsV4 = (zeros(0, 5) && g[5] === 0xffff) || (zeros(0, 6) && g[6]! >= 0x0100) || (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) ||
    (zeros(0, 4) && g[4] === 0xffff && g[5] === 0)
  if (embedsV4) {
    const forbidden = forbiddenV4([g[6]! >> 8, g[6]! & 255, g[7]! >> 8, g[7]! & 255])
    if (forbidden !== undefined) return forbidden
  }
  // 6to4 2002:a.b.c.d::/48 (stop 28's outside attack)
  if (g[0] === 0x2002) {
    const forbidden = forbiddenV4([g[1]! >> 8, g[1]! & 255, g[2]! >> 8, g[2]! & 255])
    if (forbidden !== undefined) return forbidden
  }
  if ((g[0]! & 0xffc0) === 0xfe80) return "a link-local address (cloud metadata)"
  if (g[0] === 0xfd00 && g[1] === 0x0ec2 && zeros(2, 7) && g[7] === 0x254) {
    return "a cloud metadata service (AWS, IPv6)"
  }
  // Google Cloud's metadata server over IPv6 (fd20:ce::254; stop 28's outside attack)
  if (g[0] === 0xfd20 && g[1] === 0x00ce && zeros(2, 7) && g[7] === 0x254) return "a cloud metadata service (Google Cloud, IPv6)"
  return undefined
}

const HttpUrl = Schema.String.check(
  Schema.isMaxLength(2_048),
  Schema.makeFilter((s: string) => {
    if (!URL.canParse(s)) return "Expected an absolute http or https URL"
    const url = new URL(s)
    if (url.protocol !== "http:" && url.protocol !== "https:") return "Expected an http or https URL"
    // the URL is kept in history: credentials in it would be readable by every auditor
    if (url.username !== "" || url.password !== "") return "no credentials in the URL (it is kept in history): use secretHeaders"
    const forbidden = forbiddenHost(url.hostname)
    if (forbidden !== undefined) return `${url.hostname} is ${forbidden}: not a partner's address`
    return true
  }, { description: "absolute http(s) URL, without user:password, not at a cloud metadata or unspecified address" })
)

/** `maxInFlight` when not given (domain/delivery/DestinationConfig.ts takes it from here). */
export const defaultMaxInFlight = 64

const intBetween = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

/** A destination's `lanes` at most. */
export const maxLanesEach = 16

const fields = {
  partnerId: PartnerId,
  url: HttpUrl,
  method: Schema.optionalKey(Schema.Literals(["POST", "PUT"]).annotate({ description: "default POST" })),
  headers: Schema.optionalKey(Headers),
  format: Schema.Literals(["single", "json-array", "ndjson"]).annotate({
    description: "single: one record per request (a JSON object); json-array / ndjson: up to batchSize records per request"
  }),
  batchSize: Schema.optionalKey(intBetween(1, 10_000).annotate({ description: "records per request for json-array / ndjson; default 100 (1 for single)" })),
  // at least one request in 1,000 s: a lane's share then waits at most 16,016 s between requests, a
  // timer Node can hold (before, found by an outside attack: 1e-9 was taken, and each lane's timer,
  // past Node's 24.8 days, fired every millisecond)
  ratePerSecond: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0.001), Schema.isLessThanOrEqualTo(100_000)).annotate({
    description: "requests per second at most (0.001 to 100,000), in any sliding one-second window, all owners together"
  }),
  maxInFlight: Schema.optionalKey(intBetween(1, 10_000).annotate({ description: `requests awaiting an answer at once, all owners together; default ${defaultMaxInFlight}` })),
  timeoutMs: Schema.optionalKey(intBetween(100, 300_000).annotate({ description: "per request; default 10000" })),
  maxAttempts: Schema.optionalKey(intBetween(1, 100).annotate({ description: "attempts of a request (5xx, timeout, connection error) before it is a dead letter; default 8" })),
  segmentIds: Schema.Array(Uint64String).check(Schema.isMinLength(1), Schema.isMaxLength(1_000)).annotate({ description: "the segments whose memberships it receives" }),
  refreshEvery: Schema.optionalKey(intBetween(60, 31_536_000).annotate({ description: "seconds between scheduled refreshes (every current member); none by default" })),
  lanes: Schema.optionalKey(intBetween(1, maxLanesEach).annotate({ description: "owners its limit is split over, each with ratePerSecond / lanes; default 1" }))
}

const rules = Schema.makeFilter((d: {
  readonly format: string
  readonly batchSize?: number | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly segmentIds: ReadonlyArray<string>
  readonly maxInFlight?: number | undefined
  readonly lanes?: number | undefined
}): ReadonlyArray<Schema.FilterIssue> => [
  ...(d.format === "single" && d.batchSize !== undefined && d.batchSize !== 1
    ? [{ path: ["batchSize"], issue: "format single sends one record per request: leave batchSize out (or 1)" }]
    : []),
  // maxInFlight is split over the lanes, each needing one request in flight to send at all
  ...((d.lanes ?? 1) > (d.maxInFlight ?? defaultMaxInFlight)
    ? [{ path: ["lanes"], issue: `each lane sends with a share of maxInFlight (${d.maxInFlight ?? defaultMaxInFlight}): at most that many lanes` }]
    : []),
  ...headerIssues(d.headers ?? {}, "headers", { secrets: "refuse" }),
  ...d.segmentIds.flatMap((id, i) => d.segmentIds.indexOf(id) === i ? [] : [{ path: ["segmentIds", i], issue: `segment ${id} is listed twice` }])
])

/**
 * A lane's share of `ratePerSecond` is at least one request a second. Below that each lane keeps one
 * request per stretched window, and the lanes' windows are not staggered: 8 lanes at 2/s sent 8 requests
 * within 20 ms every 4 s (stop 28's outside attack). Checked on commands only: a destination set so
 * before stop 28 is still read and delivered (as it was: its lanes may burst so); change it to lanes ≤
 * ratePerSecond.
 */
const lanesWithinRate = Schema.makeFilter((d: { readonly ratePerSecond: number; readonly lanes?: number | undefined }): ReadonlyArray<Schema.FilterIssue> =>
  (d.lanes ?? 1) > Math.max(1, Math.floor(d.ratePerSecond))
    ? [{ path: ["lanes"], issue: `each lane sends at least one request a second: at most ${Math.max(1, Math.floor(d.ratePerSecond))} lanes at ratePerSecond ${d.ratePerSecond}` }]
    : [])

/** A destination's fields as the deliverer reads them (domain/delivery/DestinationConfig.ts). */
export const DestinationFields = Schema.Struct(fields).check(rules).annotate({ identifier: "DestinationFields" })

export const Destination = Schema.Struct(fields).check(rules, lanesWithinRate).annotate({ identifier: "Destination" })
export type Destination = typeof Destination.Type

/**
 * Credentials the partner's API wants (an `Authorization` header, an API key): write-only, encrypted
 * at rest, never in history nor in an answer; the entity shows their names only.
 */
export const SecretHeaders = StrictRecord(HeaderName, HeaderValue, {
  writeOnly: true,
  description: "write-only: sent with every request, kept encrypted outside history, never returned (the state lists their names)"
})

/** PUT /v1/entities/destination/{id}: the fields and the secret headers (split off before the command). */
export const DestinationPut = Schema.Struct({ ...fields, secretHeaders: Schema.optionalKey(SecretHeaders) })
  .check(rules, lanesWithinRate)
  .check(Schema.makeFilter((d: { readonly headers?: Readonly<Record<string, string>> | undefined; readonly secretHeaders?: Readonly<Record<string, string>> | undefined }) => {
    const plain = new Set(Object.keys(d.headers ?? {}).map((n) => n.toLowerCase()))
    const secret = d.secretHeaders ?? {}
    return [
      ...headerIssues(secret, "secretHeaders", { secrets: "allow" }),
      ...Object.keys(secret).flatMap((name) => plain.has(name.toLowerCase()) ? [{ path: ["secretHeaders", name], issue: `${name} is also a plain header` }] : [])
    ]
  }))
  .annotate({ identifier: "DestinationPut" })

/** Sent by the PUT/PATCH routes after the secret store changed: the names only. */
const secretsChange = {
  headerNames: Schema.Array(Schema.String),
  /** when the store changed (the command carries time: deciding stays deterministic) */
  at: Schema.optionalKey(IsoDateTime)
}
export const RecordSecretsChange = Schema.TaggedStruct("RecordSecretsChange", secretsChange)
export const SecretsChanged = Schema.TaggedStruct("SecretsChanged", secretsChange)

const discard = {
  /** the dead letter's id (domain/delivery/DeadLetter.ts) */
  deadLetterId: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(512)),
  reason: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(2_000)),
  /** how many records it held */
  records: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
}
/** Sent by `DELETE /v1/destinations/{id}/dead-letters/{deadLetterId}`: the reason is kept in history. */
export const DiscardDeadLetter = Schema.TaggedStruct("DiscardDeadLetter", discard)
export const DeadLetterDiscarded = Schema.TaggedStruct("DeadLetterDiscarded", discard)

const dropped = {
  /** dead letters removed from DLQ */
  deadLetters: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  /** chunks (of up to DELIVERY_CHUNK_RECORDS records) removed from DELIVER before they were delivered */
  chunks: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  reason: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(2_000))
}
/** Sent by the routes once a destination is deleted (again before one is created under its id), before they purge. */
export const RecordDeliveryDropped = Schema.TaggedStruct("RecordDeliveryDropped", dropped)
export const DeliveryDropped = Schema.TaggedStruct("DeliveryDropped", dropped)

export const DestinationCommand = Schema.Union([Put, Patch, Delete, RecordSecretsChange, DiscardDeadLetter, RecordDeliveryDropped])
export type DestinationCommand = typeof DestinationCommand.Type
export const DestinationEvent = Schema.Union([EntityCreated, EntityUpdated, EntityDeleted, SecretsChanged, DeadLetterDiscarded, DeliveryDropped])
export type DestinationEvent = typeof DestinationEvent.Type

export const DestinationState = Schema.Struct({
  ...RecordState.fields,
  /** the names of its secret headers (never their values) */
  secretHeaders: Schema.optionalKey(Schema.Array(Schema.String))
})
export type DestinationState = typeof DestinationState.Type

const record = recordDecider({ type: "destination", id: DestinationId, fields: Destination, parent: { type: "partner", field: "partnerId" } })

const base = decider<DestinationCommand, DestinationEvent, DestinationState>({
  ...record,
  command: DestinationCommand,
  event: DestinationEvent,
  state: DestinationState,
  decide: (command, state, context) => {
    switch (command._tag) {
      case "RecordSecretsChange": {
        if (state.status !== "live") return Result.fail(new EntityNotFound({ entityType: context.entityType, entityId: context.entityId }))
        // Recorded even when the names stay: the values may have changed (a credential rotated), which
        // history shows, and which the destination's lanes learn at once from its snapshot (before stop
        // 29 a rotation recorded nothing, and the lanes sent the old value until their next re-read, ~5 s).
        const names = [...new Set(command.headerNames.map((n) => n.toLowerCase()))].sort()
        return Result.succeed([SecretsChanged.make({ headerNames: names, ...(command.at === undefined ? {} : { at: command.at }) })])
      }
      case "DiscardDeadLetter":
        // a deleted destination's dead letters may still be discarded
        if (state.status === "absent") return Result.fail(new EntityNotFound({ entityType: context.entityType, entityId: context.entityId }))
        return Result.succeed([DeadLetterDiscarded.make({ deadLetterId: command.deadLetterId, reason: command.reason, records: command.records })])
      case "RecordDeliveryDropped":
        if (state.status === "absent") return Result.fail(new EntityNotFound({ entityType: context.entityType, entityId: context.entityId }))
        return Result.succeed([DeliveryDropped.make({ deadLetters: command.deadLetters, chunks: command.chunks, reason: command.reason })])
      default:
        return record.decide(command, state, context)
    }
  },
  evolve: (state, event) => {
    switch (event._tag) {
      case "SecretsChanged":
        return { ...state, secretHeaders: event.headerNames }
      case "DeadLetterDiscarded":
      case "DeliveryDropped":
        return state
      default: {
        // a deleted destination's secrets go with it (the routes drop them: api/routes/destinationSecrets.ts),
        // so one created again under its id starts with none
        const next = record.evolve(state, event)
        return event._tag !== "EntityUpdated" || state.secretHeaders === undefined ? next : { ...next, secretHeaders: state.secretHeaders }
      }
    }
  },
  toJson: (state) => {
    const fields = record.toJson(state)
    return fields === null || state.secretHeaders === undefined ? fields : { ...fields, secretHeaders: [...state.secretHeaders] }
  },
  outcomes: { ...record.outcomes, SecretsChanged: "updated", DeadLetterDiscarded: "updated", DeliveryDropped: "updated" },
  staleRevision: (command, state, context) =>
    command._tag === "RecordSecretsChange" || command._tag === "DiscardDeadLetter" || command._tag === "RecordDeliveryDropped"
      ? undefined
      : record.staleRevision?.(command, state, context)
})

export const destination = { ...base, fields: record.fields, parent: record.parent! }
