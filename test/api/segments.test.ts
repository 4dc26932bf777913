import { assert, layer } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { CommandBus } from "../../domain/CommandBus.ts"
import type { EntityCommand } from "../../domain/entity.ts"
import type { ProfileRecord } from "../../domain/ingest/profileEvents.ts"
import { added, appendProfileEvents, removed } from "../fixtures/segmentEvents.ts"
import { assertInvalid, assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

const S = "18446744073709551615"
const T = "7"

interface SegmentBody {
  readonly segmentId: string
  readonly members: number
  readonly partners: ReadonlyArray<{ readonly partner: string; readonly members: number }>
  readonly days: ReadonlyArray<{ readonly day: string; readonly added: number; readonly removed: number; readonly expired: number }>
}

const dayOf = (millis: number) => new Date(millis).toISOString().slice(0, 10)

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("segments API", (it) => {
  // Written once, by whichever test runs first: p1 in S through a and b, p2 in S through a then removed, p3 in T through b.
  const seed = Effect.gen(function*() {
    yield* appendProfileEvents("maid:p1", added("a", [S]), added("b", [S]))
    yield* appendProfileEvents("maid:p2", added("a", [S]))
    yield* appendProfileEvents("maid:p2", removed("a", [S]))
    yield* appendProfileEvents("maid:p3", added("b", [T]))
  }).pipe(Effect.cached, Effect.runSync)

  const get = (url: string, key?: string) => request({ method: "GET", url, ...(key === undefined ? {} : { key }) })

  /** The segment once the projection shows every seeded change. */
  const seeded = Effect.gen(function*() {
    yield* seed
    return yield* eventually(get(`/v1/segments/${S}`), (res) => res.statusCode === 200 && (res.json() as SegmentBody).days[0]?.removed === 1, "30 seconds")
  })

  it.effect("answers members now, members per partner, and today's adds and removes", () =>
    Effect.gen(function*() {
      const res = yield* seeded
      // the events were recorded today (UTC), or a moment ago if the day just turned
      const today = dayOf(yield* Clock.currentTimeMillis)
      const body = res.json() as SegmentBody
      assert.deepStrictEqual({ ...body, days: body.days.map((d) => ({ ...d, day: "recorded" })) }, {
        segmentId: S,
        members: 1,
        partners: [{ partner: "a", members: 1 }, { partner: "b", members: 1 }],
        days: [{ day: "recorded", added: 2, removed: 1, expired: 0 }]
      })
      assert.include([today, dayOf(Date.parse(`${today}T00:00:00Z`) - 1)], body.days[0]!.day)

      // days outside ?from=&to= are left out; the members are still now's
      const day = body.days[0]!.day
      const before = dayOf(Date.parse(`${day}T00:00:00Z`) - 86_400_000)
      const earlier = yield* get(`/v1/segments/${S}?from=${dayOf(Date.parse(`${day}T00:00:00Z`) - 100 * 86_400_000)}&to=${before}`)
      assert.strictEqual(earlier.statusCode, 200, earlier.body)
      assert.deepStrictEqual((earlier.json() as SegmentBody).days, [])
      assert.strictEqual((earlier.json() as SegmentBody).members, 1)
      const exactly = yield* get(`/v1/segments/${S}?from=${day}&to=${day}`)
      assert.deepStrictEqual((exactly.json() as SegmentBody).days, body.days)
    }))

  it.effect("answers 404 for a segment that never had a member, and 400 naming the field for a bad id or day range", () =>
    Effect.gen(function*() {
      yield* seeded
      assertProblem(yield* get("/v1/segments/123"), 404, "not-found")
      assertInvalid(yield* get("/v1/segments/01"), "path", "/id")
      assertInvalid(yield* get("/v1/segments/18446744073709551616"), "path", "/id")
      assertInvalid(yield* get(`/v1/segments/${S}?from=2026-02-30`), "query", "/from")
      assertInvalid(yield* get(`/v1/segments/${S}?to=yesterday`), "query", "/to")
      assertInvalid(yield* get(`/v1/segments/${S}?from=2026-03-02&to=2026-03-01`), "query", "/to")
      assertInvalid(yield* get(`/v1/segments/${S}?from=2025-01-01&to=2026-01-02`), "query", "/from")
      // a year and a day is too long; exactly 366 days is not
      assert.strictEqual((yield* get(`/v1/segments/${S}?from=2025-01-02&to=2026-01-02`)).statusCode, 200)
    }))

  it.effect("lets service and auditor keys read segments, and refuses partner keys (403): totals mix every partner's data", () =>
    Effect.gen(function*() {
      yield* seeded
      for (const role of ["service", "auditor"]) {
        const { secret } = yield* createKey(role)
        assert.strictEqual((yield* get(`/v1/segments/${S}`, secret)).statusCode, 200, role)
      }
      const partner = yield* createKey("partner:a")
      assertProblem(yield* get(`/v1/segments/${S}`, partner.secret), 403, "forbidden")
    }))

  it.effect("shows a partner the segments it feeds with its own members, and no other partner's", () =>
    Effect.gen(function*() {
      yield* seeded
      const a = yield* createKey("partner:a")
      const b = yield* createKey("partner:b")
      const own = yield* get("/v1/ingest/a/segments", a.secret)
      assert.strictEqual(own.statusCode, 200, own.body)
      assert.deepStrictEqual(own.json(), { items: [{ segmentId: S, members: 1 }] })
      // numeric id order across pages: 7 before 18446744073709551615
      const first = yield* get("/v1/ingest/b/segments?limit=1", b.secret)
      assert.deepStrictEqual(first.json(), { items: [{ segmentId: T, members: 1 }], next: T })
      const second = yield* get(`/v1/ingest/b/segments?limit=1&after=${T}`, b.secret)
      assert.deepStrictEqual(second.json(), { items: [{ segmentId: S, members: 1 }] })
      assertProblem(yield* get("/v1/ingest/b/segments", a.secret), 403, "forbidden")
      const { secret } = yield* createKey("service")
      assert.strictEqual((yield* get("/v1/ingest/b/segments", secret)).statusCode, 200)
      assertInvalid(yield* get("/v1/ingest/B.x/segments"), "path", "/partner")
    }))

  it.effect("follows profiles changed through the command bus by the profile decider, as the translator changes them", () =>
    Effect.gen(function*() {
      const segmentId = "555"
      let n = 0
      const apply = (...records: ReadonlyArray<ProfileRecord>) =>
        Effect.gen(function*() {
          const commandId = `segments-bus-${++n}`
          const command: EntityCommand = { commandId, correlationId: commandId, entityType: "userprofile", entityId: "cookie:bus-user", action: { _tag: "Apply", records } }
          const [reply] = yield* (yield* CommandBus).sendBatch([command])
          assert.strictEqual(reply?._tag, "Accepted", JSON.stringify(reply))
        })
      let line = 0
      const record = (partner: string, op: "add" | "remove", time: string): ProfileRecord => ({
        segmentId, op, time, source: { partner, jobId: `job-${partner}`, digest: "d", line: ++line }
      })
      const read = Effect.map(get(`/v1/segments/${segmentId}`), (res) => (res.statusCode === 200 ? res.json() as SegmentBody : undefined))
      const segment = (done: (body: SegmentBody) => boolean) =>
        eventually(read, (body) => body !== undefined && done(body), "30 seconds").pipe(Effect.map((body) => body!))

      yield* apply(record("acme", "add", "2026-01-01T00:00:00Z"), record("crm", "add", "2026-01-01T00:00:00Z"))
      const both = yield* segment((body) => body.partners.length === 2)
      assert.strictEqual(both.members, 1)
      assert.deepStrictEqual(both.days.map(({ added, removed }) => ({ added, removed })), [{ added: 1, removed: 0 }])

      yield* apply(record("acme", "remove", "2026-01-02T00:00:00Z"))
      const one = yield* segment((body) => body.partners.length === 1)
      assert.deepStrictEqual(one.partners, [{ partner: "crm", members: 1 }])
      assert.strictEqual(one.members, 1)

      yield* apply(record("crm", "remove", "2026-01-02T00:00:00Z"))
      const none = yield* segment((body) => body.members === 0)
      assert.deepStrictEqual(none.partners, [])
      assert.deepStrictEqual(none.days.map(({ added, removed }) => ({ added, removed })).reduce((a, b) => ({ added: a.added + b.added, removed: a.removed + b.removed })), { added: 1, removed: 1 })
    }))
})
