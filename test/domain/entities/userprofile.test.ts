import { assert, describe, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import { profileId } from "../../../domain/ingest/LoaderRecord.ts"
import type { ProfileEvent, ProfileRecord } from "../../../domain/ingest/profileEvents.ts"
import { maxProfileMemberships, ProfileId, type ProfileState, userprofile } from "../../../domain/entities/userprofile.ts"
import { makeEntityKind } from "../../../domain/EntityKind.ts"
import type { StoredEvent } from "../../../domain/fold.ts"

const context = { entityType: "userprofile", entityId: "cookie:u1" }
const given = (...events: ReadonlyArray<ProfileEvent>) => events.reduce(userprofile.evolve, userprofile.initialState())
const decide = (state: ProfileState, command: Parameters<typeof userprofile.decide>[0]) => Result.getOrThrow(userprofile.decide(command, state, context))
const apply = (state: ProfileState, ...records: ReadonlyArray<ProfileRecord>) => decide(state, { _tag: "Apply", records })
/** The state after applying `records` one command each, from `state`. */
const after = (state: ProfileState, ...records: ReadonlyArray<ProfileRecord>) =>
  records.reduce((s, r) => apply(s, r).reduce(userprofile.evolve, s), state)
const segments = (state: ProfileState) => (userprofile.toJson(state) as { segments: ReadonlyArray<{ segmentId: string }> } | null)?.segments

const record = (over: Partial<ProfileRecord> & { partner?: string; digest?: string; line?: number } = {}): ProfileRecord => {
  const { digest = "d1", line = 1, partner = "acme", ...rest } = over
  return { segmentId: "100", op: "add", time: "2026-01-01T00:00:00Z", source: { partner, jobId: `job-${digest}`, digest, line }, ...rest }
}

describe("user profile decider", () => {
  it("decides one command as at most two events (its removes, then its adds) that leave the state every record one command at a time would, over random records", () => {
    let seed = 7 // xorshift32: the same rounds at every run
    const random = (n: number) => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return (seed >>> 0) % n
    }
    for (let round = 0; round < 200; round++) {
      const before = after(userprofile.initialState(), ...Array.from({ length: random(6) }, (_, i) =>
        record({ segmentId: String(100 + random(4)), partner: ["acme", "beta"][random(2)]!, line: 1 + i, digest: "d0", time: `2026-01-01T00:0${random(3)}:00Z` })))
      const records = Array.from({ length: 1 + random(30) }, (_, i) => record({
        segmentId: String(100 + random(4)),
        partner: ["acme", "beta"][random(2)]!,
        op: random(2) === 0 ? "add" : "remove",
        time: `2026-01-01T00:0${random(4)}:00Z`,
        digest: ["d1", "d2"][random(2)]!,
        line: 1 + i + random(2),
        ...(random(3) === 0 ? { ttlSeconds: 60 * (1 + random(100)) } : {})
      }))
      const events = apply(before, ...records)
      assert.isAtMost(events.length, 2)
      assert.deepStrictEqual(events.map((e) => e._tag), ["SegmentsRemoved", "SegmentsAdded"].filter((tag) => events.some((e) => e._tag === tag)))
      assert.deepStrictEqual(events.reduce(userprofile.evolve, before), after(before, ...records), `round ${round}`)
      assert.deepStrictEqual(userprofile.evolveMany!(before, events), events.reduce(userprofile.evolve, before), `round ${round}: folded at once`)
    }
  })

  it("a history replays at once (evolveMany) to the fold event by event: state, revision, position, createdAt, updatedAt", () => {
    const kind = makeEntityKind(userprofile)
    let state = userprofile.initialState()
    const stored: Array<StoredEvent> = []
    for (let c = 0; c < 40; c++) {
      const events = apply(state, record({ segmentId: String(100 + (c % 7)), op: c % 3 === 0 ? "remove" : "add", line: c + 1, ttlSeconds: 60 }), record({ segmentId: String(200 + (c % 5)), line: c + 1 }))
      for (const event of events) {
        const { type, data } = kind.toEventData(event)
        stored.push({ type, data, revision: stored.length, position: 1_000 + stored.length, recordedAt: `2026-01-01T00:${String(c).padStart(2, "0")}:00.000Z` } as StoredEvent)
      }
      state = events.reduce(userprofile.evolve, state)
    }
    const oneByOne = stored.reduce(kind.apply, kind.initial())
    assert.deepStrictEqual(kind.replay(stored), oneByOne)
    assert.deepStrictEqual(kind.replay(stored.slice(10), kind.replay(stored.slice(0, 10))), oneByOne)
    assert.strictEqual(oneByOne.createdAt, stored[0]!.recordedAt)
    // Nor does a fold ask toJson (it sorts every segment): it was asked twice an event.
    let asked = 0
    const counted = makeEntityKind({ ...userprofile, toJson: (s: ProfileState) => (asked++, userprofile.toJson(s)) })
    counted.replay(stored)
    stored.reduce(counted.apply, counted.initial())
    assert.strictEqual(asked, 0)
  })

  it("2,000 records alternating add and remove of one segment on a profile of 9,999 make two events at most", () => {
    const big = given({ _tag: "SegmentsAdded", memberships: Array.from({ length: 9_999 }, (_, i) => ({ partner: "acme", segmentId: String(1_000 + i), time: "2026-01-01T00:00:00Z", source: { partner: "acme", jobId: "j", digest: "d0", line: i + 1 } })) })
    const events = apply(big, ...Array.from({ length: 2_000 }, (_, i) => record({ op: i % 2 === 0 ? "add" : "remove", line: i + 1 })))
    assert.deepStrictEqual(events.map((e) => [e._tag, e.memberships.length]), [["SegmentsRemoved", 1]])
    assert.strictEqual(Object.keys(events.reduce(userprofile.evolve, big).memberships).length, 10_000)
  })

  it("adds a membership with its expiry counted from the record's time, and wants waking then", () => {
    const events = apply(given(), record({ ttlSeconds: 60 }))
    assert.deepStrictEqual(events, [{
      _tag: "SegmentsAdded",
      memberships: [{ partner: "acme", segmentId: "100", time: "2026-01-01T00:00:00Z", expiresAt: "2026-01-01T00:01:00.000Z", source: record().source }]
    }])
    const state = events.reduce(userprofile.evolve, given())
    assert.strictEqual(userprofile.wakeAt?.(state), Date.parse("2026-01-01T00:01:00Z"))
    assert.deepStrictEqual(userprofile.toJson(state), {
      segments: [{ segmentId: "100", expiresAt: "2026-01-01T00:01:00.000Z", addedAt: "2026-01-01T00:00:00Z", sources: [{ partner: "acme", jobId: "job-d1", line: 1 }] }]
    })
  })

  it("applies records in the order of their time: a late, older add does not undo a newer remove (tombstone)", () => {
    const removed = after(given(), record({ op: "remove", time: "2026-01-02T00:00:00Z", line: 2 }))
    assert.deepStrictEqual(segments(removed), [])
    assert.notStrictEqual(userprofile.toJson(removed), null) // it had a record: the profile exists
    assert.deepStrictEqual(apply(removed, record({ time: "2026-01-01T00:00:00Z", line: 1 })), [])
    // a late, older remove does not undo a newer add either
    const added = after(given(), record({ time: "2026-01-03T00:00:00Z", line: 3 }))
    assert.deepStrictEqual(apply(added, record({ op: "remove", time: "2026-01-02T00:00:00Z", line: 2 })), [])
    // a newer add after the tombstone applies
    assert.deepStrictEqual(segments(after(removed, record({ time: "2026-01-03T00:00:00Z", line: 3 })))?.map((s) => s.segmentId), ["100"])
  })

  it("orders times to the nanosecond: an older remove in the same millisecond does not undo a newer add", () => {
    const added = after(given(), record({ time: "2026-01-01T00:00:00.663000002Z", line: 1 }))
    assert.deepStrictEqual(apply(added, record({ op: "remove", time: "2026-01-01T00:00:00.663000001Z", digest: "d2" })), [])
    assert.deepStrictEqual(apply(added, record({ op: "remove", time: "2026-01-01T00:00:00.6630000019+00:00", digest: "d2" })), [])
    assert.strictEqual(apply(added, record({ op: "remove", time: "2026-01-01T00:00:00.663000003Z", digest: "d2" }))[0]?._tag, "SegmentsRemoved")
    // fewer digits are zeros: .6630 is before .663000002
    assert.deepStrictEqual(apply(added, record({ op: "remove", time: "2026-01-01T00:00:00.6630Z", digest: "d2" })), [])
  })

  it("keeps memberships per partner: one partner's remove never erases another's add", () => {
    const state = after(
      given(),
      record({ partner: "acme", ttlSeconds: 60 }),
      record({ partner: "bravo", digest: "d2", time: "2026-01-01T00:00:30Z", ttlSeconds: 3600 }),
      record({ partner: "bravo", digest: "d2", line: 2, op: "remove", time: "2026-01-01T00:00:40Z" })
    )
    assert.deepStrictEqual(userprofile.toJson(state), {
      segments: [{ segmentId: "100", expiresAt: "2026-01-01T00:01:00.000Z", addedAt: "2026-01-01T00:00:00Z", sources: [{ partner: "acme", jobId: "job-d1", line: 1 }] }]
    })
  })

  it("shows a segment two partners hold with the latest expiry (none if one has none), the earliest addedAt and both sources", () => {
    const both = after(given(), record({ ttlSeconds: 60 }), record({ partner: "bravo", digest: "d2", line: 7, time: "2026-01-01T00:00:10Z", ttlSeconds: 600 }))
    assert.deepStrictEqual(userprofile.toJson(both), {
      segments: [{
        segmentId: "100",
        expiresAt: "2026-01-01T00:10:10.000Z",
        addedAt: "2026-01-01T00:00:00Z",
        sources: [{ partner: "acme", jobId: "job-d1", line: 1 }, { partner: "bravo", jobId: "job-d2", line: 7 }]
      }]
    })
    const forever = after(both, record({ partner: "carol", digest: "d3" }))
    assert.isUndefined((userprofile.toJson(forever) as { segments: Array<{ expiresAt?: string }> }).segments[0]!.expiresAt)
  })

  it("renews an existing membership's expiry with a new SegmentsAdded, keeping when it was added", () => {
    const first = after(given(), record({ ttlSeconds: 60 }))
    const events = apply(first, record({ line: 2, time: "2026-01-01T00:00:50Z", ttlSeconds: 60 }))
    assert.strictEqual(events[0]?._tag, "SegmentsAdded")
    const renewed = events.reduce(userprofile.evolve, first)
    assert.strictEqual(userprofile.wakeAt?.(renewed), Date.parse("2026-01-01T00:01:50Z"))
    assert.strictEqual((userprofile.toJson(renewed) as { segments: Array<{ addedAt: string }> }).segments[0]!.addedAt, "2026-01-01T00:00:00Z")
  })

  it("is idempotent by source: the record that last set a membership changes nothing again; a new file's same line renews", () => {
    const state = after(given(), record({ ttlSeconds: 60 }))
    assert.deepStrictEqual(apply(state, record({ ttlSeconds: 60 })), [])
    // the same lines again within one command: once
    assert.strictEqual(apply(given(), record(), record()).flatMap((e): ReadonlyArray<unknown> => e.memberships).length, 1)
    const again = apply(state, record({ digest: "d2", ttlSeconds: 120 }))
    assert.strictEqual(again.length, 1)
    assert.strictEqual(userprofile.wakeAt?.(again.reduce(userprofile.evolve, state)), Date.parse("2026-01-01T00:02:00Z"))
  })

  it("at the same time, a later line of the same file wins and an earlier one redelivered changes nothing", () => {
    const state = after(given(), record({ line: 1 }), record({ line: 2, op: "remove" }))
    assert.deepStrictEqual(segments(state), [])
    assert.deepStrictEqual(apply(state, record({ line: 1 })), [])
  })

  it("wakes at the next whole second at or after the earliest expiry, so that expiries a millisecond apart take one Wake a second", () => {
    const state = given({ _tag: "SegmentsAdded", memberships: Array.from({ length: 1_000 }, (_, i) => ({ partner: "acme", segmentId: String(1_000 + i), time: "2026-01-01T00:00:00Z", expiresAt: new Date(Date.parse("2026-01-01T00:01:00.001Z") + i).toISOString(), source: { partner: "acme", jobId: "j", digest: "d0", line: i + 1 } })) })
    const at = userprofile.wakeAt!(state)
    assert.strictEqual(at, Date.parse("2026-01-01T00:01:01Z"))
    const events = decide(state, { _tag: "Wake", at: at! })
    assert.strictEqual(events.reduce((n, e) => n + e.memberships.length, 0), 1_000, "one Wake expires all 1,000")
    assert.isUndefined(userprofile.wakeAt!(events.reduce(userprofile.evolve, state)))
  })

  it("expires 4,500 memberships due at once in events of at most 2,000 (one event of 60,000 was 9 MB, past what HISTORY carries)", () => {
    const state = given({ _tag: "SegmentsAdded", memberships: Array.from({ length: 4_500 }, (_, i) => ({ partner: "acme", segmentId: String(1_000 + i), time: "2026-01-01T00:00:00Z", expiresAt: "2026-01-01T00:01:40.000Z", source: { partner: "acme", jobId: "j", digest: "d0", line: i + 1 } })) })
    const events = decide(state, { _tag: "Wake", at: Date.parse("2026-01-01T00:01:40.000Z") })
    assert.deepStrictEqual(events.map((e) => [e._tag, e.memberships.length]), [["SegmentsExpired", 2_000], ["SegmentsExpired", 2_000], ["SegmentsExpired", 500]])
    assert.isTrue(Object.values(events.reduce(userprofile.evolve, state).memberships).every((m) => !m.present))
  })

  it("expires, on Wake, every present membership due at or before the wake's instant, and nothing early", () => {
    const state = after(given(), record({ segmentId: "1", ttlSeconds: 60 }), record({ segmentId: "2", line: 2, ttlSeconds: 120 }), record({ segmentId: "3", line: 3 }))
    const at = Date.parse("2026-01-01T00:01:00Z")
    assert.deepStrictEqual(decide(state, { _tag: "Wake", at: at - 1 }), [])
    const events = decide(state, { _tag: "Wake", at })
    assert.deepStrictEqual(events, [{
      _tag: "SegmentsExpired",
      at: "2026-01-01T00:01:00.000Z",
      memberships: [{ partner: "acme", segmentId: "1", expiresAt: "2026-01-01T00:01:00.000Z" }]
    }])
    const expired = events.reduce(userprofile.evolve, state)
    assert.deepStrictEqual(segments(expired)?.map((s) => s.segmentId), ["2", "3"])
    assert.strictEqual(userprofile.wakeAt?.(expired), Date.parse("2026-01-01T00:02:00Z"))
    // the expired record redelivered does not resurrect it; a new file does
    assert.deepStrictEqual(apply(expired, record({ segmentId: "1", ttlSeconds: 60 })), [])
    assert.strictEqual(apply(expired, record({ segmentId: "1", digest: "d9", ttlSeconds: 60 })).length, 1)
  })

  it("a profile without any record does not exist", () => {
    assert.strictEqual(userprofile.toJson(given()), null)
    assert.isUndefined(userprofile.wakeAt?.(given()))
  })

  it("accepts exactly the ids profileId writes: normalised user ids, unsafe ones encoded", () => {
    const ok = Schema.is(ProfileId)
    const cookie = profileId("cookie", "a.b c")
    assert.isTrue(cookie.startsWith("cookie:~"))
    assert.isTrue(ok(cookie))
    assert.isTrue(ok(profileId("maid", "6d92078a-8246-4ba4-ae5b-76104861e7dc")))
    assert.isFalse(ok("maid:6D92078A-8246-4BA4-AE5B-76104861E7DC")) // not normalised
    assert.isFalse(ok("cookie:a.b")) // unsafe, not encoded
    assert.isFalse(ok("device:abc"))
    assert.isFalse(ok("cookie:"))
    assert.isFalse(ok(`cookie:~${Buffer.from("abc").toString("base64url")}`)) // a safe id encoded: two spellings
  })
})

describe("user profile size", () => {
  /** A profile holding `count` memberships of partner acme, segments 1 … count, the last `removed` of them removed. */
  const holding = (count: number, removed = 0): ProfileState => {
    const memberships: Record<string, unknown> = {}
    for (let i = 1; i <= count; i++) {
      const segmentId = String(i)
      const source = { partner: "acme", jobId: "job-d0", digest: "d0", line: i }
      memberships[`acme/${segmentId}`] = i > count - removed
        ? { partner: "acme", segmentId, present: false, time: "2026-01-01T00:00:00Z", source }
        : { partner: "acme", segmentId, present: true, time: "2026-01-01T00:00:00Z", addedAt: "2026-01-01T00:00:00Z", source }
    }
    return { memberships } as unknown as ProfileState
  }

  it("refuses a command that would make one partner hold more than maxProfileMemberships on the profile, removed ones counted, naming the limit", () => {
    const full = holding(maxProfileMemberships - 1, 100)
    // one more fits
    assert.isTrue(Result.isSuccess(userprofile.decide({ _tag: "Apply", records: [record({ segmentId: "900001", time: "2026-02-01T00:00:00Z" })] }, full, context)))
    // two more do not: the command is refused whole, with its other changes
    const refused = userprofile.decide({
      _tag: "Apply",
      records: [record({ segmentId: "1", op: "remove", time: "2026-02-01T00:00:00Z" }), record({ segmentId: "900001", time: "2026-02-01T00:00:00Z", line: 2 }), record({ segmentId: "900002", time: "2026-02-01T00:00:00Z", line: 3 })]
    }, full, context)
    assert.isTrue(Result.isFailure(refused))
    if (Result.isFailure(refused)) {
      assert.strictEqual(refused.failure._tag, "CommandRefused")
      assert.match((refused.failure as { reason: string }).reason, new RegExp(`hold ${maxProfileMemberships + 1} memberships of partner acme .* more than ${maxProfileMemberships}`))
    }
  })

  it("counts each partner's memberships apart: one partner at the limit shuts no other partner out of the user", () => {
    // A cap on the whole profile let one partner fill a user it shares with others, and remove it all
    // again, and no partner could add that user to a segment any more (the re-attack of stop 26).
    const full = holding(maxProfileMemberships, maxProfileMemberships)
    const other = userprofile.decide({ _tag: "Apply", records: Array.from({ length: 3 }, (_, i) => record({ partner: "beta", segmentId: String(800_000 + i), line: i + 1 })) }, full, context)
    assert.isTrue(Result.isSuccess(other))
    assert.isTrue(Result.isFailure(userprofile.decide({ _tag: "Apply", records: [record({ segmentId: "900001", time: "2026-02-01T00:00:00Z" })] }, full, context)))
  })

  it("takes changes to the memberships a full profile holds: removes, renewals, a removed one added back, and expiries", () => {
    const full = holding(maxProfileMemberships, 10)
    const changes = userprofile.decide({
      _tag: "Apply",
      records: [
        record({ segmentId: "1", op: "remove", time: "2026-02-01T00:00:00Z" }),
        record({ segmentId: "2", time: "2026-02-01T00:00:00Z", ttlSeconds: 60, line: 2 }),
        record({ segmentId: String(maxProfileMemberships), time: "2026-02-01T00:00:00Z", line: 3 })
      ]
    }, full, context)
    assert.isTrue(Result.isSuccess(changes))
    assert.isTrue(Result.isSuccess(userprofile.decide({ _tag: "Wake", at: Date.parse("2026-03-01T00:00:00Z") }, full, context)))
    // past the limit already (a profile from before it): what it holds still changes, nothing new comes in
    const over = holding(maxProfileMemberships + 5)
    assert.isTrue(Result.isSuccess(userprofile.decide({ _tag: "Apply", records: [record({ segmentId: "3", op: "remove", time: "2026-02-01T00:00:00Z" })] }, over, context)))
    assert.isTrue(Result.isFailure(userprofile.decide({ _tag: "Apply", records: [record({ segmentId: "900003", time: "2026-02-01T00:00:00Z" })] }, over, context)))
  })
})
