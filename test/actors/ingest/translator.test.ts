/**
 * The partners' translators on a running platform (real nats-server, SQLite, command bus and user
 * profile shards): jobs entered through Intake as the doors do, read back from the ledger and the
 * profiles. The translation is the real one, wrapped so that a line naming the user `crash-me` is
 * a bug (a defect) in the translator: that partner's translator restarts, the others carry on.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import type { Translate } from "../../../actors/ingest/Translate.ts"
import { streamName } from "../../../domain/envelope.ts"
import { EventStore } from "../../../domain/EventStore.ts"
import { Intake } from "../../../domain/ingest/Intake.ts"
import { IngestJobs, type Job } from "../../../domain/ingest/Job.ts"
import { ReplaceIndex } from "../../../domain/ingest/ReplaceIndex.ts"
import { crmBank } from "../../fixtures/partners/index.ts"
import { profileId } from "../../../domain/ingest/LoaderRecord.ts"
import { translateStream } from "../../../infra/ingest/translateStream.ts"
import { getEntity } from "../../../projections/EntityQueries.ts"
import { ingestSubject, StreamNames } from "../../../domain/subjects.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { eventually, request } from "../../fixtures/http.ts"
import { layerTestPlatform } from "../../fixtures/platform.ts"

/** Held lines: a line naming a user `<prefix>…` waits until its test releases that prefix (each test its own). */
const holds = new Map(["hold-", "slow-", "dup-", "wide-", "fence-"].map((prefix) => {
  let release: () => void = () => {}
  const opened = new Promise<void>((resolve) => (release = resolve))
  return [prefix, { opened, release }] as const
}))
const release = (prefix: string) => holds.get(prefix)!.release()
const holdOf = (userIds: ReadonlyArray<string>) => [...holds].find(([prefix]) => userIds.some((id) => id.startsWith(prefix)))?.[1]

const crashing: Translate = (translation, input, options) =>
  translateStream(translation, input, options).pipe(
    Stream.tap((line) =>
      line._tag !== "Records"
        ? Effect.void
        : line.records.some((r) => r.userId === "crash-me")
        ? Effect.die(new Error("a bug in the translator"))
        : Effect.promise(() => holdOf(line.records.map((r) => r.userId))?.opened ?? Promise.resolve()))
  )

const loaderLine = (userId: string, segmentId: string, op = "add") =>
  JSON.stringify({ idKind: "cookie", userId, segmentId, op, time: "2026-11-01T10:00:00Z" })

/** The partner's entity, as the doors require (a job of a partner that does not exist fails). */
const partnerExists = (partner: string) =>
  Effect.gen(function*() {
    const res = yield* request({ method: "PUT", url: `/v1/entities/partner/${partner}`, body: { name: partner } })
    assert.oneOf(res.statusCode, [200, 201], res.body)
  })

const encoder = new TextEncoder()
const fileJob = (partner: string, lines: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    yield* partnerExists(partner)
    const intake = yield* Intake
    return yield* intake.file({ partner, source: "http", format: "loader", body: Stream.make(encoder.encode(lines.join("\n") + "\n")) })
  })

const jobNow = (id: string) =>
  Effect.gen(function*() {
    const jobs = yield* IngestJobs
    return Option.getOrThrow(yield* jobs.get(id)).job
  })

const ended = (id: string) => eventually(jobNow(id), (job) => job.state === "done" || job.state === "failed", "45 seconds")

const segmentsOf = (userId: string) =>
  Effect.map(getEntity("userprofile", profileId("cookie", userId)), (entity) =>
    Option.match(entity, {
      onNone: () => [] as Array<string>,
      onSome: (e) => ((e.state?.segments ?? []) as Array<{ segmentId: string }>).map((s) => s.segmentId).sort()
    }))

const eventsOf = (userId: string) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    return (yield* store.readStream(streamName("userprofile", profileId("cookie", userId)), { fromRevision: 0, maxCount: 1_000 })).length
  })

const assertReconciles = (job: Job) => {
  assert.strictEqual(job.recordsAccepted, job.duplicates + job.recordsCommitted, JSON.stringify(job))
}

// REALTIME_MAX_BYTES 300: a real-time body of 300 characters or more runs alone, a few one-line ones side by side
layer(layerTestPlatform({ TRANSLATE_BATCH_LINES: "5", TRANSLATE_CHECKPOINT_LINES: "5", REALTIME_MAX_BYTES: "300" }, { translate: crashing }), {
  excludeTestServices: true,
  timeout: 120_000
})("the partners' translators", (it) => {
  it.effect("run a file job to done: every line counted, records committed to their profiles, counts reconciled", () =>
    Effect.gen(function*() {
      const lines = Array.from({ length: 23 }, (_, i) => loaderLine(`u${i % 7}`, String(100 + (i % 3))))
      lines.splice(10, 0, "{not json")
      const job = yield* ended((yield* fileJob("alpha", lines)).id)
      assert.strictEqual(job.state, "done", JSON.stringify(job))
      assert.strictEqual(job.linesRead, 24)
      assert.strictEqual(job.linesRejected, 1)
      assert.strictEqual(job.errors[0]!.line, 11)
      assert.strictEqual(job.recordsAccepted, 23)
      assert.strictEqual(job.percent, 100)
      assertReconciles(job)
      // u0 is on lines 1, 8, 15, 22 (before the bad line's shift: i = 0, 7, 14, 21): segments 100, 101, 102, 100
      assert.deepStrictEqual(yield* segmentsOf("u0"), ["100", "101", "102"])
    }))

  it.effect("count a file loaded again as duplicates and change no profile twice", () =>
    Effect.gen(function*() {
      const lines = Array.from({ length: 12 }, (_, i) => loaderLine(`twice-${i}`, "200"))
      const first = yield* ended((yield* fileJob("beta", lines)).id)
      assert.strictEqual(first.state, "done")
      assert.strictEqual(first.recordsCommitted, 12)
      const before = yield* Effect.forEach(lines, (_, i) => eventsOf(`twice-${i}`))
      const second = yield* ended((yield* fileJob("beta", lines)).id)
      assert.strictEqual(second.state, "done", JSON.stringify(second))
      assert.strictEqual(second.duplicates, 12)
      assert.strictEqual(second.recordsCommitted, 0)
      assertReconciles(second)
      assert.deepStrictEqual(yield* Effect.forEach(lines, (_, i) => eventsOf(`twice-${i}`)), before)
      assert.isTrue(before.every((n) => n === 1), JSON.stringify(before))
    }))

  it.effect("run real-time POSTs as small jobs of their own, each applied", () =>
    Effect.gen(function*() {
      yield* partnerExists("gamma")
      const intake = yield* Intake
      const posted = yield* Effect.forEach([1, 2, 3, 4, 5], (n) =>
        intake.records({ partner: "gamma", format: "loader", body: [loaderLine(`rt-${n}`, "300"), loaderLine(`rt-${n}`, "301")].join("\n") }))
      const jobs = yield* Effect.forEach(posted, (job) => ended(job.id))
      for (const job of jobs) {
        assert.strictEqual(job.state, "done", JSON.stringify(job))
        assert.strictEqual(job.source, "realtime")
        assert.strictEqual(job.recordsCommitted, 2)
      }
      assert.deepStrictEqual(yield* segmentsOf("rt-3"), ["300", "301"])
    }))

  it.effect("run a partner's real-time POSTs side by side: one held does not hold up the next", () =>
    Effect.gen(function*() {
      // A real-time job waits mostly for its profiles' shards, behind whatever they have queued (a file
      // loading): one at a time, a partner's POSTs waited for each other's round trips (stop 25).
      yield* partnerExists("zeta")
      const intake = yield* Intake
      const stuck = yield* intake.records({ partner: "zeta", format: "loader", body: loaderLine("slow-1", "600") })
      yield* eventually(jobNow(stuck.id), (job) => job.state === "translating", "30 seconds")
      const next = yield* intake.records({ partner: "zeta", format: "loader", body: loaderLine("z-2", "600") })
      const done = yield* ended(next.id)
      assert.strictEqual(done.state, "done", JSON.stringify(done))
      assert.deepStrictEqual(yield* segmentsOf("z-2"), ["600"])
      assert.strictEqual((yield* jobNow(stuck.id)).state, "translating")
      release("slow-")
      assert.strictEqual((yield* ended(stuck.id)).state, "done")
      assert.deepStrictEqual(yield* segmentsOf("slow-1"), ["600"])
    }))

  it.effect("run a partner's real-time POSTs within a budget of body size: a full-size one alone", () =>
    Effect.gen(function*() {
      // Eight full-size bodies of one partner at once filled the profile shards ahead of every other
      // partner and took RSS to 1.5 GB (stop 25's outside attack): a body as large as REALTIME_MAX_BYTES
      // runs alone, as every POST did before.
      yield* partnerExists("theta")
      const intake = yield* Intake
      const body = ["wide-1", "t-1", "t-2", "t-3"].map((u) => loaderLine(u, "900")).join("\n")
      assert.isAtLeast(body.length, 300)
      const large = yield* intake.records({ partner: "theta", format: "loader", body })
      yield* eventually(jobNow(large.id), (job) => job.state === "translating", "30 seconds")
      const small = yield* intake.records({ partner: "theta", format: "loader", body: loaderLine("t-4", "900") })
      // (without the budget, the small one is done here, beside the held large one)
      const waited = yield* Effect.exit(eventually(jobNow(small.id), (job) => job.state === "done", "2 seconds"))
      assert.strictEqual(waited._tag, "Failure", "a small POST ran beside a full-size one")
      release("wide-")
      assert.strictEqual((yield* ended(large.id)).state, "done")
      assert.strictEqual((yield* ended(small.id)).state, "done")
      assert.deepStrictEqual(yield* segmentsOf("t-4"), ["900"])
    }))

  it.effect("count a real-time job once when its message comes again while it runs", () =>
    Effect.gen(function*() {
      // JetStream delivers a message again past its ack wait: with one realtime actor the copy waited
      // behind the run; side by side another actor may take it at once (stop 25). Its commands carry the
      // same ids and the job's counts are set, not added: the job and its profile change once either way.
      yield* partnerExists("eta")
      const intake = yield* Intake
      const body = [loaderLine("dup-1", "700"), loaderLine("dup-1", "701")].join("\n")
      const job = yield* intake.records({ partner: "eta", format: "loader", body })
      yield* eventually(jobNow(job.id), (j) => j.state === "translating", "30 seconds")
      const { jetstream, manager } = yield* Nats
      const again = { _tag: "RealtimeRecords", jobId: job.id, partner: "eta", source: "realtime", format: "loader", body, receivedAt: job.createdAt }
      yield* tryNats("publish", () => jetstream.publish(ingestSubject("eta"), JSON.stringify(again)))
      // the copy is in the translator's hands (delivered, not acknowledged), beside the held run
      yield* eventually(
        tryNats("consumer", () => manager.consumers.info(StreamNames.ingest, "ingest-eta")),
        (info) => info.num_ack_pending >= 2,
        "30 seconds"
      )
      yield* Effect.sleep("500 millis")
      release("dup-")
      const done = yield* ended(job.id)
      assert.strictEqual(done.state, "done", JSON.stringify(done))
      assert.strictEqual(done.recordsCommitted, 2, JSON.stringify(done))
      assert.strictEqual(done.duplicates, 0, JSON.stringify(done))
      assertReconciles(done)
      assert.deepStrictEqual(yield* segmentsOf("dup-1"), ["700", "701"])
      yield* eventually(
        tryNats("consumer", () => manager.consumers.info(StreamNames.ingest, "ingest-eta")),
        (info) => info.num_ack_pending === 0,
        "30 seconds"
      )
    }))

  it.effect("isolate a crashing partner: its job fails after repeated crashes, another partner's job completes meanwhile, and its next job runs", () =>
    Effect.gen(function*() {
      const poison = yield* fileJob("delta", [loaderLine("d-1", "400"), loaderLine("crash-me", "400"), loaderLine("d-2", "400")])
      const other = yield* fileJob("epsilon", Array.from({ length: 8 }, (_, i) => loaderLine(`e-${i}`, "500")))
      const otherDone = yield* ended(other.id)
      assert.strictEqual(otherDone.state, "done")
      assert.strictEqual(otherDone.recordsCommitted, 8)
      const failed = yield* ended(poison.id)
      assert.strictEqual(failed.state, "failed", JSON.stringify(failed))
      assert.match(failed.failure ?? "", /crashed/)
      const next = yield* ended((yield* fileJob("delta", [loaderLine("d-3", "401")])).id)
      assert.strictEqual(next.state, "done", JSON.stringify(next))
      assert.deepStrictEqual(yield* segmentsOf("d-3"), ["401"])
    }))

  it.effect("a job takes its partner's allowedSegments as they are at each batch: a list narrowed mid-job applies from the next", () =>
    Effect.gen(function*() {
      // the third attack of stop 27: a job kept the list it started with, and a PATCH narrowing it at
      // 40,000 of 60,000 records let the other 20,000 in
      const partner = "fencer"
      const put = yield* request({ method: "PUT", url: `/v1/entities/partner/${partner}`, body: { name: partner, allowedSegments: ["801", "802"] } })
      assert.strictEqual(put.statusCode, 201, put.body)
      const intake = yield* Intake
      // its first batch (5 lines) commits; its sixth line is held
      const users = ["fa", "fb", "fc", "fd", "fe", "fence-f", "fg"]
      const job = yield* intake.file({ partner, source: "http", format: "loader", body: Stream.make(encoder.encode(users.map((u) => loaderLine(u, "802")).join("\n") + "\n")) })
      yield* eventually(segmentsOf("fa"), (segments) => segments.includes("802"), "30 seconds")
      const patched = yield* request({ method: "PATCH", url: `/v1/entities/partner/${partner}`, body: { allowedSegments: ["801"] }, contentType: "application/merge-patch+json" })
      assert.strictEqual(patched.statusCode, 200, patched.body)
      release("fence-")
      const done = yield* ended(job.id)
      assert.deepInclude(done, { state: "done", linesRead: 7, linesRejected: 2, recordsCommitted: 5 })
      assert.deepStrictEqual(done.errors.map((e) => [e.line, e.column, e.reason]), [6, 7].map((line) => [line, "segmentId", "segment 802 is not among the partner's allowedSegments"]))
      assert.deepStrictEqual(yield* Effect.forEach(users, segmentsOf), [["802"], ["802"], ["802"], ["802"], ["802"], [], []])
      assertReconciles(done)
    }))

  it.effect("a replacement waits for its partner's real-time job in flight before it looks for what to remove", () =>
    Effect.gen(function*() {
      // Stop 24's second outside attack: a real-time job that had read the replacement's watermark before it
      // was set committed adds dated before it after the removals had passed their segment: they stayed.
      const partner = "replacer"
      assert.strictEqual((yield* request({ method: "PUT", url: `/v1/entities/partner/${partner}`, body: crmBank.body })).statusCode, 201)
      const intake = yield* Intake
      // a real-time job: its first batch (5 lines) commits; its sixth line is held
      const users = ["rt-a", "rt-b", "rt-c", "rt-d", "rt-e", "hold-f"]
      const realtime = yield* intake.records({ partner, format: "loader", body: users.map((u) => loaderLine(u, "777")).join("\n") })
      yield* eventually(segmentsOf("rt-a"), (segments) => segments.includes("777"), "30 seconds")
      // the partner's full list of 777, received after those records' time: only `keep`
      const replacement = yield* intake.file({ partner, source: "http", format: "loader", body: Stream.make(encoder.encode(loaderLine("keep", "777") + "\n")) })
      const index = yield* ReplaceIndex
      yield* eventually(index.replacedAt(partner, ["777"]), (found) => found.has("777"), "30 seconds")
      // (without the wait, the replacement ends here, before the held line is in)
      const waiting = yield* Effect.exit(eventually(jobNow(replacement.id), (job) => job.state === "done", "2 seconds"))
      // it waits with every line counted, at 99.9%
      if (waiting._tag === "Failure") assert.deepInclude(yield* jobNow(replacement.id), { state: "translating", percent: 99.9 })
      release("hold-")
      assert.strictEqual((yield* ended(realtime.id)).state, "done")
      assert.strictEqual((yield* ended(replacement.id)).state, "done")
      assert.deepStrictEqual(yield* Effect.forEach([...users, "keep"], segmentsOf), [[], [], [], [], [], [], ["777"]])
    }))
})
