import { assert, describe, it } from "@effect/vitest"
import { Option, Result } from "effect"
import type { DecideContext } from "../../../domain/Decider.ts"
import { destinationConfigOf } from "../../../domain/delivery/DestinationConfig.ts"
import { destination, type DestinationCommand, type DestinationEvent, type DestinationState } from "../../../domain/entities/destination.ts"
import type { EntityRejection } from "../../../domain/entity.ts"

const context: DecideContext = { entityType: "destination", entityId: "acme-dsp" }
const fields = { partnerId: "acme", url: "https://api.acme.test/members", format: "json-array", ratePerSecond: 200, segmentIds: ["1", "2"] }

const given = (...events: ReadonlyArray<DestinationEvent>): DestinationState => events.reduce(destination.evolve, destination.initialState())
const when = (state: DestinationState, command: DestinationCommand) => destination.decide(command, state, context)
const created: DestinationEvent = { _tag: "EntityCreated", fields }

/** The paths of the fields a Put is refused for. */
const refusedPaths = (result: Result.Result<ReadonlyArray<DestinationEvent>, EntityRejection>) => {
  if (Result.isSuccess(result)) return assert.fail("expected a refusal")
  const failure = result.failure
  assert.strictEqual(failure._tag, "InvalidEntity")
  return failure._tag === "InvalidEntity" ? failure.issues.map((i) => i.path.join(".")) : []
}

describe("destination decider", () => {
  it("creates a destination", () => {
    assert.deepStrictEqual(when(given(), { _tag: "Put", fields }), Result.succeed([created]))
  })

  it("refuses invalid fields, naming each", () => {
    const paths = refusedPaths(when(given(), {
      _tag: "Put",
      fields: {
        partnerId: "Acme!", url: "ftp://x.test", format: "csv", ratePerSecond: 0, segmentIds: [],
        maxInFlight: 0, timeoutMs: 10, maxAttempts: 0, refreshEvery: 59, lanes: 17, method: "GET"
      }
    }))
    for (const field of ["partnerId", "url", "format", "ratePerSecond", "segmentIds", "maxInFlight", "timeoutMs", "maxAttempts", "refreshEvery", "lanes", "method"]) {
      assert.include(paths, field)
    }
    assert.include(refusedPaths(when(given(), { _tag: "Put", fields: { ...fields, ratePerSecond: 100_001 } })), "ratePerSecond")
    // too slow for a timer to wait for (found by an outside attack: the lane's timer fired every millisecond)
    assert.include(refusedPaths(when(given(), { _tag: "Put", fields: { ...fields, ratePerSecond: 1e-9 } })), "ratePerSecond")
    assert.isTrue(Result.isSuccess(when(given(), { _tag: "Put", fields: { ...fields, ratePerSecond: 0.001 } })))
    assert.include(refusedPaths(when(given(), { _tag: "Put", fields: { ...fields, batchSize: 10_001 } })), "batchSize")
    assert.include(refusedPaths(when(given(), { _tag: "Put", fields: { ...fields, surprise: 1 } })), "surprise")
    // each lane needs one request in flight
    assert.include(refusedPaths(when(given(), { _tag: "Put", fields: { ...fields, maxInFlight: 2, lanes: 3 } })), "lanes")
    // and a share of at least one request a second (stop 28's outside attack: 8 lanes at 2/s sent 8 requests within 20 ms every 4 s)
    assert.include(refusedPaths(when(given(), { _tag: "Put", fields: { ...fields, ratePerSecond: 2, lanes: 8 } })), "lanes")
    assert.include(refusedPaths(when(given(), { _tag: "Put", fields: { ...fields, ratePerSecond: 0.5, lanes: 2 } })), "lanes")
    assert.isTrue(Result.isSuccess(when(given(), { _tag: "Put", fields: { ...fields, ratePerSecond: 2.5, lanes: 2 } })))
    assert.isTrue(Result.isSuccess(when(given(), { _tag: "Put", fields: { ...fields, ratePerSecond: 0.5, lanes: 1 } })))
    // lowering the rate under the lanes is refused too; one set so before is still read by the deliverer
    const laned = given({ _tag: "EntityCreated", fields: { ...fields, ratePerSecond: 8, lanes: 8 } })
    assert.include(refusedPaths(when(laned, { _tag: "Patch", patch: { ratePerSecond: 2 } })), "lanes")
    assert.isTrue(Option.isSome(destinationConfigOf("acme-dsp", { ...fields, ratePerSecond: 2, lanes: 8 })))
  })

  it("refuses credentials in the URL, duplicate segments and a batch size for single", () => {
    assert.include(refusedPaths(when(given(), { _tag: "Put", fields: { ...fields, url: "https://user:pw@api.acme.test/" } })), "url")
    assert.include(refusedPaths(when(given(), { _tag: "Put", fields: { ...fields, segmentIds: ["1", "1"] } })), "segmentIds.1")
    assert.include(refusedPaths(when(given(), { _tag: "Put", fields: { ...fields, format: "single", batchSize: 10 } })), "batchSize")
  })

  it("refuses reserved and secret-looking plain headers, naming the header", () => {
    const paths = refusedPaths(when(given(), {
      _tag: "Put",
      fields: { ...fields, headers: { "Idempotency-Key": "x", Connection: "close", Authorization: "Bearer s3cret", "X-Api-Key": "k" } }
    }))
    for (const path of ["headers.Idempotency-Key", "headers.Connection", "headers.Authorization", "headers.X-Api-Key"]) {
      assert.include(paths, path)
    }
    // a bad value is named first; the names are checked once the values decode
    assert.includeMembers(refusedPaths(when(given(), { _tag: "Put", fields: { ...fields, headers: { "bad name": "v", "X-Ok": "a\r\nb" } } })), ["headers.X-Ok"])
    assert.includeMembers(refusedPaths(when(given(), { _tag: "Put", fields: { ...fields, headers: { "bad name": "v", "X-Ok": "b" } } })), ["headers.bad name"])
    assert.isTrue(Result.isSuccess(when(given(), { _tag: "Put", fields: { ...fields, headers: { "X-Tenant": "42", Accept: "application/json" } } })))
  })

  it("records secret header names only, and shows them in the state", () => {
    const live = given(created)
    const result = when(live, { _tag: "RecordSecretsChange", headerNames: ["X-Api-Key", "authorization"], at: "2026-01-01T00:00:00Z" })
    assert.deepStrictEqual(result, Result.succeed([{ _tag: "SecretsChanged", headerNames: ["authorization", "x-api-key"], at: "2026-01-01T00:00:00Z" } as DestinationEvent]))
    const after = given(created, ...Result.getOrThrow(result))
    assert.deepStrictEqual(destination.toJson(after), { ...fields, secretHeaders: ["authorization", "x-api-key"] })
    // the same names again are recorded too: their values may have changed (a credential rotated)
    assert.deepStrictEqual(when(after, { _tag: "RecordSecretsChange", headerNames: ["x-api-key", "Authorization"], at: "2026-01-02T00:00:00Z" }),
      Result.succeed([{ _tag: "SecretsChanged", headerNames: ["authorization", "x-api-key"], at: "2026-01-02T00:00:00Z" } as DestinationEvent]))
    // an update keeps them
    const updated = destination.evolve(after, { _tag: "EntityUpdated", changes: { ratePerSecond: 300 } })
    assert.deepStrictEqual(updated.secretHeaders, ["authorization", "x-api-key"])
  })

  it("refuses a secrets change of a destination that does not exist", () => {
    const result = when(given(), { _tag: "RecordSecretsChange", headerNames: ["authorization"] })
    assert.strictEqual(Result.isFailure(result) ? result.failure._tag : "accepted", "EntityNotFound")
  })

  it("keeps a discarded dead letter's reason in history, also after a delete", () => {
    const discard: DestinationCommand = { _tag: "DiscardDeadLetter", deadLetterId: "acme-dsp.0.continuous.3.0", reason: "partner confirmed duplicates", records: 100 }
    const expected = { _tag: "DeadLetterDiscarded", deadLetterId: "acme-dsp.0.continuous.3.0", reason: "partner confirmed duplicates", records: 100 } as DestinationEvent
    assert.deepStrictEqual(when(given(created), discard), Result.succeed([expected]))
    assert.deepStrictEqual(when(given(created, { _tag: "EntityDeleted" }), discard), Result.succeed([expected]))
    const absent = when(given(), discard)
    assert.strictEqual(Result.isFailure(absent) ? absent.failure._tag : "accepted", "EntityNotFound")
  })

  it("forgets its secret header names when deleted: one created again under its id starts with none", () => {
    const withSecrets = given(created, { _tag: "SecretsChanged", headerNames: ["x-api-key"] })
    assert.isUndefined(destination.evolve(withSecrets, { _tag: "EntityDeleted" }).secretHeaders)
    const again = destination.evolve(destination.evolve(withSecrets, { _tag: "EntityDeleted" }), created)
    assert.deepStrictEqual(destination.toJson(again), fields)
  })

  it("records what a deletion dropped from DLQ and DELIVER, once deleted too", () => {
    const drop: DestinationCommand = { _tag: "RecordDeliveryDropped", deadLetters: 2, chunks: 1, reason: "destination deleted" }
    const expected = { _tag: "DeliveryDropped", deadLetters: 2, chunks: 1, reason: "destination deleted" } as DestinationEvent
    assert.deepStrictEqual(when(given(created, { _tag: "EntityDeleted" }), drop), Result.succeed([expected]))
    const absent = when(given(), drop)
    assert.strictEqual(Result.isFailure(absent) ? absent.failure._tag : "accepted", "EntityNotFound")
  })

  it("belongs to its partner", () => {
    assert.deepStrictEqual(destination.parentOf?.(given(created)), { type: "partner", id: "acme" })
  })
})

describe("destinationConfigOf", () => {
  it("applies the defaults", () => {
    const config = Option.getOrThrow(destinationConfigOf("acme-dsp", { ...fields, headers: { "X-Tenant": "42" }, lanes: 4, secretHeaders: ["authorization"] }))
    assert.deepStrictEqual(config, {
      id: "acme-dsp", partnerId: "acme", url: "https://api.acme.test/members", method: "POST", headers: { "x-tenant": "42" },
      secretHeaderNames: ["authorization"], format: "json-array", batchSize: 100, ratePerSecond: 200, ratePerLane: 50,
      maxInFlight: 64, timeoutMs: 10_000, maxAttempts: 8, segmentIds: ["1", "2"], refreshEvery: undefined, lanes: 4
    })
    assert.strictEqual(Option.getOrThrow(destinationConfigOf("s", { ...fields, format: "single" })).batchSize, 1)
    assert.isTrue(Option.isNone(destinationConfigOf("gone", null)))
  })
})
