import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"
import { runReminders } from "../../actors/runtime/ReminderScheduler.ts"
import { CommandBus, type CommandReply } from "../../domain/CommandBus.ts"
import type { EntityCommand } from "../../domain/entity.ts"
import { EventStore } from "../../domain/EventStore.ts"
import { type IdKind, profileId } from "../../domain/ingest/LoaderRecord.ts"
import type { ProfileRecord } from "../../domain/ingest/profileEvents.ts"
import { shardOf } from "../../domain/shards.ts"
import { wakeCommand } from "../../domain/wake.ts"
import { assertInvalid, assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

let n = 0
/** Applies records to a profile through the command bus (as the translator does), one batch. */
const applyRecords = (kind: IdKind, userId: string, records: ReadonlyArray<ProfileRecord>) =>
  Effect.gen(function*() {
    const commandId = `profiles-route-${++n}`
    const command: EntityCommand = { commandId, correlationId: commandId, entityType: "userprofile", entityId: profileId(kind, userId), action: { _tag: "Apply", records } }
    const [reply] = yield* (yield* CommandBus).sendBatch([command])
    assert.strictEqual(reply!._tag, "Accepted", JSON.stringify(reply))
    return reply as Extract<CommandReply, { _tag: "Accepted" }>
  })
const record = (segmentId: string, line: number, over: Partial<ProfileRecord> = {}): ProfileRecord => ({
  segmentId, op: "add", time: "2026-01-01T00:00:00Z", source: { partner: "acme", jobId: "job-7", digest: "d7", line }, ...over
})
const profileUrl = (kind: string, userId: string, query = "") => `/v1/profiles/${kind}/${encodeURIComponent(userId)}${query}`

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("GET /v1/profiles/{kind}/{userId}", (it) => {
  it.effect("answers a cookie with '.' and spaces, and a maid in upper case, with their segments; explain names the lines (auditor)", () =>
    Effect.gen(function*() {
      const service = yield* createKey("service")
      const auditor = yield* createKey("auditor")
      yield* applyRecords("cookie", "id.with dots and spaces", [record("20", 1, { ttlSeconds: 3600 }), record("10", 2)])
      const res = yield* request({ method: "GET", url: profileUrl("cookie", "id.with dots and spaces"), key: service.secret })
      assert.strictEqual(res.statusCode, 200, res.body)
      assert.deepStrictEqual(res.json(), {
        idKind: "cookie",
        userId: "id.with dots and spaces",
        revision: 0,
        segments: [{ segmentId: "10", addedAt: "2026-01-01T00:00:00Z" }, { segmentId: "20", expiresAt: "2026-01-01T01:00:00.000Z", addedAt: "2026-01-01T00:00:00Z" }]
      })
      const explained = yield* request({ method: "GET", url: profileUrl("cookie", "id.with dots and spaces", "?explain=true"), key: auditor.secret })
      assert.strictEqual(explained.statusCode, 200, explained.body)
      assert.deepStrictEqual((explained.json() as { segments: Array<{ sources: unknown }> }).segments.map((s) => s.sources), [
        [{ partner: "acme", jobId: "job-7", line: 2 }],
        [{ partner: "acme", jobId: "job-7", line: 1 }]
      ])

      const maid = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
      yield* applyRecords("maid", maid, [record("30", 3)])
      const upper = yield* request({ method: "GET", url: profileUrl("maid", maid.toUpperCase()), key: service.secret })
      assert.strictEqual(upper.statusCode, 200, upper.body)
      assert.strictEqual((upper.json() as { userId: string }).userId, maid)
    }))

  it.effect("the generic entity route shows a service key a profile without the lines behind its segments; an auditor with them", () =>
    Effect.gen(function*() {
      // Before (stop 26's outside attack), a service key read every segment's sources (partner, job, line)
      // at /v1/entities/userprofile/{id}, which /v1/profiles keeps for auditors (explain).
      const service = yield* createKey("service")
      const auditor = yield* createKey("auditor")
      yield* applyRecords("cookie", "generic-route", [record("20", 1)])
      const url = `/v1/entities/userprofile/${encodeURIComponent(profileId("cookie", "generic-route"))}`
      const asService = yield* request({ method: "GET", url, key: service.secret })
      assert.strictEqual(asService.statusCode, 200, asService.body)
      assert.deepStrictEqual((asService.json() as { state: unknown }).state, { segments: [{ segmentId: "20", addedAt: "2026-01-01T00:00:00Z" }] })
      const asAuditor = yield* request({ method: "GET", url, key: auditor.secret })
      assert.deepStrictEqual((asAuditor.json() as { state: { segments: Array<{ sources: unknown }> } }).state.segments[0]!.sources, [{ partner: "acme", jobId: "job-7", line: 1 }])
    }))

  it.effect("a profile's commands are the platform's: Apply (and Wake) over HTTP are 400 naming _tag, and change nothing", () =>
    Effect.gen(function*() {
      // Before (stop 28's outside attack), a service key's Apply wrote memberships in any partner's name,
      // with any job and line, past that partner's allowedSegments and its cap.
      const service = yield* createKey("service")
      const url = `/v1/entities/userprofile/${encodeURIComponent(profileId("cookie", "forged"))}/commands`
      const forged = { _tag: "Apply", records: [record("10", -5, { source: { partner: "acme", jobId: "not-a-job", digest: "x", line: -5 } })] }
      for (const body of [forged, { _tag: "Wake", at: 1 }]) {
        const res = yield* request({ method: "POST", url, key: service.secret, body })
        assertInvalid(res, "body", "/_tag")
      }
      assertProblem(yield* request({ method: "GET", url: profileUrl("cookie", "forged"), key: service.secret }), 404, "not-found")
    }))

  it.effect("answers the profile as it was at asOf (auditor)", () =>
    Effect.gen(function*() {
      const auditor = yield* createKey("auditor")
      const first = yield* applyRecords("customer", "asof-user", [record("1", 1)])
      yield* applyRecords("customer", "asof-user", [record("2", 2)])
      const then = yield* request({ method: "GET", url: profileUrl("customer", "asof-user", `?asOf=${first.entity.updatedAt}`), key: auditor.secret })
      assert.strictEqual(then.statusCode, 200, then.body)
      assert.deepStrictEqual((then.json() as { revision: number; segments: Array<{ segmentId: string }> }).segments.map((s) => s.segmentId), ["1"])
      const now = yield* request({ method: "GET", url: profileUrl("customer", "asof-user"), key: auditor.secret })
      assert.deepStrictEqual((now.json() as { revision: number; segments: Array<{ segmentId: string }> }).segments.map((s) => s.segmentId), ["1", "2"])
      const before = yield* request({ method: "GET", url: profileUrl("customer", "asof-user", "?asOf=2000-01-01T00:00:00Z"), key: auditor.secret })
      assertProblem(before, 404, "not-found")
    }))

  it.effect("404 for a user without a profile, 400 naming userId for an id its kind cannot have, 403 for asOf/explain as service and for a partner key", () =>
    Effect.gen(function*() {
      const service = yield* createKey("service")
      const partner = yield* createKey("partner:acme")
      yield* applyRecords("cookie", "known", [record("1", 1)])
      assertProblem(yield* request({ method: "GET", url: profileUrl("cookie", "nobody"), key: service.secret }), 404, "not-found")
      assertInvalid(yield* request({ method: "GET", url: profileUrl("maid", "not-a-uuid"), key: service.secret }), "path", "/userId")
      assertInvalid(yield* request({ method: "GET", url: profileUrl("device", "x"), key: service.secret }), "path", "/kind")
      assertProblem(yield* request({ method: "GET", url: profileUrl("cookie", "known", "?explain=true"), key: service.secret }), 403, "forbidden")
      assertProblem(yield* request({ method: "GET", url: profileUrl("cookie", "known", "?asOf=2030-01-01T00:00:00Z"), key: service.secret }), 403, "forbidden")
      assertProblem(yield* request({ method: "GET", url: profileUrl("cookie", "known"), key: partner.secret }), 403, "forbidden")
    }))

  it.effect("expires a membership due at the same instant as one it already expired: the reminder set again is a wake-up of its own", () =>
    Effect.gen(function*() {
      // Both due an hour ago, so the platform's scheduler fires each as soon as it is set. Before (stop 26's
      // outside attack), the second wake-up had the first one's command id, the profile took it for that
      // command again, and the second membership stayed for good.
      const time = new Date(Date.now() - 2 * 3_600_000).toISOString()
      const id = profileId("cookie", "due-twice")
      const store = yield* EventStore
      const types = Effect.map(store.readStream(`userprofile-${id}`), (events) => events.map((e) => e.type))
      yield* applyRecords("cookie", "due-twice", [record("61", 1, { time, ttlSeconds: 3_600 })])
      yield* eventually(types, (t) => t.length === 2, "30 seconds")
      yield* applyRecords("cookie", "due-twice", [record("62", 2, { time, ttlSeconds: 3_600 })])
      assert.deepStrictEqual(yield* eventually(types, (t) => t.length === 4, "30 seconds"), ["SegmentsAdded", "SegmentsExpired", "SegmentsAdded", "SegmentsExpired"])
      const events = yield* store.readStream(`userprofile-${id}`)
      assert.deepStrictEqual((events[3]!.data as { memberships: Array<{ segmentId: string }> }).memberships.map((m) => m.segmentId), ["62"])
    }))

  it.effect("expires a membership through its reminder, fired at the whole second at or after its instant under TestClock: a SegmentsExpired event, the segment gone", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const auditor = yield* createKey("auditor")
      // commands carry deadlines from this clock, which the platform's entities check against the real one
      yield* TestClock.setTime(Date.now())
      // an hour from now in real time, so the platform's own (live) scheduler does not fire it during the test
      const time = new Date().toISOString()
      const dueAt = Date.parse(time) + 3_600_000
      yield* applyRecords("cookie", "expiring", [record("42", 1, { time, ttlSeconds: 3600 }), record("43", 2, { time })])
      const id = profileId("cookie", "expiring")
      const fired = yield* Deferred.make<CommandReply>()
      const scheduler = yield* runReminders({
        shards: Stream.make([shardOf(id, bus.shards)]),
        fire: (reminder) => reminder.entityId !== id ? Effect.void : Effect.flatMap(bus.send(wakeCommand(reminder)), (reply) => Deferred.succeed(fired, reply))
      }).pipe(Effect.forkChild)
      yield* TestClock.setTime(dueAt - 1_000)
      const segments = () =>
        Effect.map(request({ method: "GET", url: profileUrl("cookie", "expiring"), key: auditor.secret }), (res) =>
          (res.json() as { segments: Array<{ segmentId: string }> }).segments.map((s) => s.segmentId))
      assert.deepStrictEqual(yield* segments(), ["42", "43"])
      // the profile wakes at the whole second at or after the expiry (one Wake a second at most)
      const wakeAt = Math.ceil(dueAt / 1_000) * 1_000
      yield* TestClock.setTime(wakeAt)
      // the wake travels the real bus and commits on the store's writer thread in real time: wait for its answer
      const reply = yield* Deferred.await(fired)
      assert.strictEqual(reply._tag, "Accepted")
      assert.deepStrictEqual(yield* segments(), ["43"])
      const events = yield* (yield* EventStore).readStream(`userprofile-${id}`)
      assert.deepStrictEqual(events.map((e) => e.type), ["SegmentsAdded", "SegmentsExpired"])
      assert.deepStrictEqual(events[1]!.data, {
        at: new Date(wakeAt).toISOString(),
        memberships: [{ partner: "acme", segmentId: "42", expiresAt: new Date(dueAt).toISOString() }]
      })
      yield* Fiber.interrupt(scheduler)
    }).pipe(Effect.provide(TestClock.layer())))
})
