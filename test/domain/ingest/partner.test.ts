import { assert, describe, it } from "@effect/vitest"
import { Option, Result, Schema } from "effect"
import type { DecideContext } from "../../../domain/Decider.ts"
import { partner, partnerConfigOf, PartnerId, type PartnerCommand, type PartnerEvent, type PartnerState } from "../../../domain/entities/partner.ts"
import { deciders } from "../../../domain/entities/index.ts"
import { makeEntityKind } from "../../../domain/EntityKind.ts"
import { validate } from "../../../domain/validation.ts"
import { acmeData, crmBank, pixelCo } from "../../fixtures/partners/index.ts"

const context: DecideContext = { entityType: "partner", entityId: "acme-data" }
const given = (...events: ReadonlyArray<PartnerEvent>): PartnerState => events.reduce(partner.evolve, partner.initialState())
const when = (state: PartnerState, command: PartnerCommand) => partner.decide(command, state, context)
const paths = (input: unknown) => {
  const result = validate(partner.fields, input)
  return Result.isFailure(result) ? result.failure.map((i) => i.path.join(".")) : []
}

describe("partner entity", () => {
  it("is registered, as a record type (PUT/PATCH/DELETE) with history only of what changed", () => {
    assert.include(deciders.map((d) => d.type), "partner")
    assert.isTrue("fields" in partner)
  })

  it("takes lowercase slugs as ids, nothing else", () => {
    const ok = Schema.is(PartnerId)
    assert.isTrue(ok("acme-data"))
    assert.isTrue(ok("p2"))
    for (const bad of ["Acme", "2fast", "-x", "a.b", "a_b", "", `a${"b".repeat(63)}`]) assert.isFalse(ok(bad), bad)
  })

  it("accepts the three example partners", () => {
    for (const example of [acmeData, crmBank, pixelCo]) assert.isTrue(Result.isSuccess(validate(partner.fields, example.body)), example.id)
  })

  it("rejects an invalid format spec naming the failing field's path", () => {
    const spec = acmeData.body.formatSpec
    assert.deepStrictEqual(paths({ ...acmeData.body, formatSpec: { ...spec, delimiter: ";;" } }), ["formatSpec.delimiter"])
    assert.deepStrictEqual(paths({ ...acmeData.body, formatSpec: { ...spec, segments: { kind: "list", column: "segments" } } }), ["formatSpec.segments.separator"])
    assert.deepStrictEqual(paths({ ...acmeData.body, formatSpec: { ...spec, idKind: "idfa" } }), ["formatSpec.idKind"])
    assert.deepStrictEqual(paths({ ...acmeData.body, formatSpec: { ...spec, time: { column: "ts", format: "unix" } } }), ["formatSpec.time.format"])
    assert.deepStrictEqual(paths({ ...acmeData.body, formatSpec: { ...spec, mode: "full" } }), ["formatSpec.mode"])
    assert.deepStrictEqual(paths({ ...acmeData.body, segmentMap: { auto: "12.5" } }), ["segmentMap.auto"])
    // a code over 200 characters is refused by name (it was dropped from the map without a word)
    const long = "c".repeat(201)
    assert.deepStrictEqual(paths({ ...acmeData.body, segmentMap: { ...acmeData.body.segmentMap, [long]: "7" } }), [`segmentMap.${long}`])
    assert.deepStrictEqual(paths({ ...acmeData.body, defaultTtlSeconds: 0 }), ["defaultTtlSeconds"])
    assert.deepStrictEqual(paths({ ...acmeData.body, surprise: 1 }), ["surprise"])
    // at most 10,000 codes (stop 17's attack: 100,000 held the event loop 2–3 s a PUT)
    const codes = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`c${i}`, String(i + 1)]))
    assert.deepStrictEqual(paths({ ...acmeData.body, segmentMap: { ...acmeData.body.segmentMap, ...codes(10_001) } }), ["segmentMap"])
    assert.deepStrictEqual(paths({ ...acmeData.body, segmentMap: { ...acmeData.body.segmentMap, ...codes(10_000 - Object.keys(acmeData.body.segmentMap ?? {}).length) } }), [])
  })

  it("checks the spec as a whole: columns named as the format names them, quote and delimiter apart, codes mapped", () => {
    const spec = acmeData.body.formatSpec
    // with a header, columns are names; positions are for files without one
    assert.deepStrictEqual(paths({ ...acmeData.body, formatSpec: { ...spec, userId: 1 } }), ["formatSpec.userId"])
    assert.deepStrictEqual(paths({ ...crmBank.body, formatSpec: { ...crmBank.body.formatSpec, time: { column: "when", format: "rfc3339" } } }), ["formatSpec.time.column"])
    assert.deepStrictEqual(paths({ ...crmBank.body, formatSpec: { ...crmBank.body.formatSpec, userId: 6 } }), ["formatSpec.userId"])
    assert.deepStrictEqual(paths({ ...acmeData.body, formatSpec: { ...spec, quote: "," } }), ["formatSpec.quote"])
    assert.deepStrictEqual(paths({ ...pixelCo.body, formatSpec: { ...pixelCo.body.formatSpec, ttl: { column: 3 } } }), ["formatSpec.ttl.column"])
    // a one-column-per-segment spec's codes must be in the map; a spec needs a map at all
    const { vip: _, ...withoutVip } = crmBank.body.segmentMap!
    assert.deepStrictEqual(paths({ ...crmBank.body, segmentMap: withoutVip }), ["formatSpec.segments.columns.0.code"])
    const { segmentMap: __, ...noMap } = acmeData.body
    assert.deepStrictEqual(paths(noMap), ["segmentMap"])
    // a partner without a spec sends loader-format JSON Lines
    assert.deepStrictEqual(paths({ name: "Loader only" }), [])
  })

  it("records that credentials changed, never their values, and shows it in the state", () => {
    const created: PartnerEvent = { _tag: "EntityCreated", fields: { name: "Acme Data" } }
    const change: PartnerCommand = { _tag: "RecordCredentialsChange", password: true, sshPublicKeys: 2, at: "2026-11-28T12:00:00Z" }
    const events = when(given(created), change)
    assert.deepStrictEqual(events, Result.succeed([{ _tag: "CredentialsChanged", password: true, sshPublicKeys: 2, at: "2026-11-28T12:00:00Z" }]))
    const state = given(created, ...Result.getOrThrow(events))
    assert.deepStrictEqual(partner.toJson(state), { name: "Acme Data", credentials: { password: true, sshPublicKeys: 2, changedAt: "2026-11-28T12:00:00Z" } })
    // a later replace of the fields keeps what the credentials are
    const replaced = given(created, ...Result.getOrThrow(events), ...Result.getOrThrow(when(state, { _tag: "Put", fields: { name: "Acme" } })))
    assert.deepStrictEqual(partner.toJson(replaced), { name: "Acme", credentials: { password: true, sshPublicKeys: 2, changedAt: "2026-11-28T12:00:00Z" } })
    // of a partner that does not exist: not found
    const refused = when(given(), change)
    assert.isTrue(Result.isFailure(refused) && refused.failure._tag === "EntityNotFound")
  })

  it("stores and replays its events through the generic runtime's codecs", () => {
    const kind = makeEntityKind(partner)
    assert.isTrue(kind.knowsEvent("CredentialsChanged"))
    assert.isTrue(kind.knowsEvent("EntityCreated"))
    const stored = kind.toEventData({ _tag: "CredentialsChanged", password: false, sshPublicKeys: 1 } as PartnerEvent)
    assert.deepStrictEqual(stored, { type: "CredentialsChanged", data: { password: false, sshPublicKeys: 1 } })
    assert.isTrue(Result.isSuccess(kind.decodeCommand({ _tag: "RecordCredentialsChange", password: true, sshPublicKeys: 0 })))
    assert.isTrue(Result.isFailure(kind.decodeCommand({ _tag: "RecordCredentialsChange", password: "secret", sshPublicKeys: 0 })))
  })

  it("gives the translation config of a partner's state, none without a format spec", () => {
    const state = partner.toJson(given({ _tag: "EntityCreated", fields: pixelCo.body }, { _tag: "CredentialsChanged", password: true, sshPublicKeys: 0 }))
    assert.deepStrictEqual(partnerConfigOf(state), Option.some(pixelCo.config))
    assert.isTrue(Option.isNone(partnerConfigOf({ name: "Loader only", credentials: { password: true, sshPublicKeys: 0 } })))
    assert.isTrue(Option.isNone(partnerConfigOf(null)))
  })
})
