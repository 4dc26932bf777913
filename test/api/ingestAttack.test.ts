/**
 * Ingestion attacked from outside, as a hostile or careless partner would: a whole platform (real
 * nats-server, SQLite files, HTTP, FTP and SFTP doors on free ports) and real clients. Each test
 * replays a hole that was found and stays shut.
 */
import { assert, describe, layer } from "@effect/vitest"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Clock, type Duration, Effect, Exit } from "effect"
import { sftpHostKey } from "../../infra/ingest/fileDoors.ts"
import { freePort } from "../../infra/nats/NatsServer.ts"
import { ftpLogin, sftpLogin, waitListening } from "../fixtures/fileDoors.ts"
import { maxProfileMemberships } from "../../domain/entities/userprofile.ts"
import type { Job } from "../../domain/ingest/Job.ts"
import { assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

const ports = await Effect.runPromise(Effect.all({ ftp: freePort(), sftp: freePort(), passive: freePort() }))
const hostKeyFile = join(mkdtempSync(join(tmpdir(), "attack-")), "sftp-host.key")
const hostKey = sftpHostKey(hostKeyFile)

const platform = layerTestPlatform({
  FTP_ENABLED: "true",
  FTP_PORT: String(ports.ftp),
  FTP_PASSIVE_PORTS: `${ports.passive}-${ports.passive + 4}`,
  SFTP_ENABLED: "true",
  SFTP_PORT: String(ports.sftp),
  SFTP_HOST_KEY_FILE: hostKeyFile
})

const putPartner = (id: string, status: "active" | "paused") =>
  Effect.gen(function*() {
    const res = yield* request({ method: "PUT", url: `/v1/entities/partner/${id}`, body: { name: `Partner ${id}`, status } })
    assert.oneOf(res.statusCode, [200, 201], res.body)
  })

const setPassword = (id: string, password: string) =>
  Effect.gen(function*() {
    const res = yield* request({ method: "PUT", url: `/v1/admin/partners/${id}/credentials`, body: { password } })
    assert.oneOf(res.statusCode, [200, 204], res.body)
  })

/** The message a failed login ended with, or undefined when it was accepted. */
const ftpRefusal = (user: string, password: string) =>
  Effect.scoped(Effect.exit(ftpLogin(ports.ftp, user, password))).pipe(
    Effect.map((exit) => Exit.isSuccess(exit) ? undefined : String((exit.cause as unknown as { reasons?: Array<{ error?: Error }> }).reasons?.[0]?.error?.message ?? exit.cause))
  )

const sftpAccepted = (user: string, password: string) =>
  Effect.scoped(Effect.exit(sftpLogin(ports.sftp, hostKey, { username: user, password }))).pipe(Effect.map(Exit.isSuccess))

/** The job once it is done or failed. */
const jobEnded = (jobId: string, within: Duration.Input = "60 seconds") =>
  eventually(Effect.map(request({ method: "GET", url: `/v1/ingest/jobs/${jobId}` }), (res) => res.json() as Job), (job) => job.state === "done" || job.state === "failed", within)

describe("ingestion attacked from outside", { timeout: 120_000 }, () => {
  layer(platform, { excludeTestServices: true, timeout: 120_000 })((it) => {
    it.effect("a paused partner cannot log in at the FTP or SFTP door, and can again once active", () =>
      Effect.gen(function*() {
        yield* waitListening(ports.ftp)
        yield* waitListening(ports.sftp)
        yield* putPartner("sleepy", "active")
        yield* setPassword("sleepy", "sleepy-password-1")
        assert.isUndefined(yield* ftpRefusal("sleepy", "sleepy-password-1"))
        assert.isTrue(yield* sftpAccepted("sleepy", "sleepy-password-1"))

        yield* putPartner("sleepy", "paused")
        const refused = yield* ftpRefusal("sleepy", "sleepy-password-1")
        assert.match(refused ?? "accepted", /paused/)
        assert.isFalse(yield* sftpAccepted("sleepy", "sleepy-password-1"))
        // The HTTP door says the same.
        const { secret } = yield* createKey("partner:sleepy")
        assertProblem(yield* request({ method: "POST", url: "/v1/ingest/sleepy/files", key: secret, contentType: "text/plain", body: "x\n" }), 409, "partner-paused")

        yield* putPartner("sleepy", "active")
        assert.isUndefined(yield* ftpRefusal("sleepy", "sleepy-password-1"))
      }))

    it.effect("the same Idempotency-Key with a different body is 422, not the first job answered as if it were this data", () =>
      Effect.gen(function*() {
        yield* putPartner("careless", "active")
        const { secret } = yield* createKey("partner:careless")
        const line = (userId: string) => `{"idKind":"cookie","userId":"${userId}","segmentId":"7","op":"add","time":"2026-01-01T00:00:00Z"}\n`
        const post = (body: string) =>
          request({ method: "POST", url: "/v1/ingest/careless/records", key: secret, contentType: "application/x-ndjson", body, headers: { "idempotency-key": "batch-1" } })
        const first = yield* post(line("alice"))
        assert.strictEqual(first.statusCode, 202, first.body)
        const retry = yield* post(line("alice"))
        assert.strictEqual(retry.statusCode, 202, retry.body)
        assert.strictEqual((retry.json() as { jobId: string }).jobId, (first.json() as { jobId: string }).jobId)
        const problem = assertProblem(yield* post(line("bob")), 422, "idempotency-key-reused")
        assert.match(problem.title, /Idempotency-Key/)
      }))

    it.effect("a record dated far in the future is rejected on its line, so it cannot outrank every later correction", () =>
      Effect.gen(function*() {
        yield* putPartner("timetraveller", "active")
        const { secret } = yield* createKey("partner:timetraveller")
        const post = (op: string, time: string) =>
          Effect.map(request({
            method: "POST", url: "/v1/ingest/timetraveller/records", key: secret, contentType: "application/x-ndjson",
            body: `{"idKind":"cookie","userId":"marty","segmentId":"88","op":"${op}","time":"${time}"}\n`
          }), (res) => {
            assert.strictEqual(res.statusCode, 202, res.body)
            return (res.json() as { jobId: string }).jobId
          })
        const now = yield* Clock.currentTimeMillis
        const future = yield* jobEnded(yield* post("add", "9999-12-31T23:59:59Z"))
        assert.deepInclude(future, { state: "done", linesRead: 1, linesRejected: 1, recordsCommitted: 0 })
        assert.strictEqual(future.errors[0]?.column, "time")
        // A day of clock skew is allowed.
        const soon = yield* jobEnded(yield* post("add", new Date(now + 3_600_000).toISOString()))
        assert.deepInclude(soon, { state: "done", recordsCommitted: 1 })
        const later = yield* jobEnded(yield* post("remove", new Date(now + 7_200_000).toISOString()))
        assert.deepInclude(later, { state: "done", recordsCommitted: 1 })
        const profile = yield* request({ method: "GET", url: "/v1/profiles/cookie/marty" })
        assert.deepStrictEqual((profile.json() as { segments: Array<unknown> }).segments, [], profile.body)
      }))

    it.effect("a user id of 250 characters outside ASCII loads beside the others: its profile id (~1,000 characters encoded) is named shorter in command ids", () =>
      Effect.gen(function*() {
        // Before (stop 26's outside attack), the command id passed the bus's 1,024 characters: the bus refused
        // the shard batch for ever, a file job stayed translating with its partner's queue behind it, and a
        // real-time POST holding such a line failed whole, its good lines with it.
        yield* putPartner("longids", "active")
        const { secret } = yield* createKey("partner:longids")
        const wide = "中".repeat(250)
        const now = new Date((yield* Clock.currentTimeMillis) - 60_000).toISOString()
        const line = (userId: string) => JSON.stringify({ idKind: "cookie", userId, segmentId: "77", op: "add", time: now })
        const res = yield* request({
          method: "POST", url: "/v1/ingest/longids/records", key: secret, contentType: "application/x-ndjson",
          body: [line("short-before"), line(wide), line("short-after")].join("\n") + "\n"
        })
        assert.strictEqual(res.statusCode, 202, res.body)
        const job = yield* jobEnded((res.json() as { jobId: string }).jobId)
        assert.deepInclude(job, { state: "done", linesRead: 3, linesRejected: 0, recordsCommitted: 3 })
        const profile = yield* request({ method: "GET", url: `/v1/profiles/cookie/${encodeURIComponent(wide)}` })
        assert.strictEqual(profile.statusCode, 200, profile.body)
        assert.deepStrictEqual((profile.json() as { segments: Array<{ segmentId: string }> }).segments.map((s) => s.segmentId), ["77"])
      }))

    it.effect("a record whose time has more than nine digits of fraction is rejected on its line: a 60,000-digit time would ride along into every delivery chunk", () =>
      Effect.gen(function*() {
        yield* putPartner("longtime", "active")
        const { secret } = yield* createKey("partner:longtime")
        const line = (userId: string, time: string) => `{"idKind":"cookie","userId":"${userId}","segmentId":"5","op":"add","time":"${time}"}\n`
        const res = yield* request({
          method: "POST", url: "/v1/ingest/longtime/records", key: secret, contentType: "application/x-ndjson",
          body: line("long", `2026-01-01T00:00:00.${"1".repeat(60_000)}Z`) + line("nano", "2026-01-01T00:00:00.123456789Z") + line("ten", "2026-01-01T00:00:00.1234567890Z")
        })
        assert.strictEqual(res.statusCode, 202, res.body)
        const job = yield* jobEnded((res.json() as { jobId: string }).jobId)
        assert.deepInclude(job, { state: "done", linesRead: 3, linesRejected: 2, recordsCommitted: 1 })
        assert.deepStrictEqual(job.errors.map((e) => [e.line, e.column]), [[1, "time"], [3, "time"]])
        assert.match(job.errors[0]!.reason, /9 digits of fraction/)
        const nano = yield* request({ method: "GET", url: "/v1/profiles/cookie/nano" })
        assert.strictEqual((nano.json() as { segments: Array<{ addedAt: string }> }).segments[0]?.addedAt, "2026-01-01T00:00:00.123456789Z", nano.body)
      }))

    it.effect("a record dated before 0000-01-01T00:00:00Z (year 0000 at +23:59) is rejected on its line: its expiry in year −1 wedged the partner's jobs", () =>
      Effect.gen(function*() {
        yield* putPartner("ancient", "active")
        const { secret } = yield* createKey("partner:ancient")
        const line = (userId: string, time: string) => `{"idKind":"cookie","userId":"${userId}","segmentId":"6","op":"add","time":"${time}","ttlSeconds":60}\n`
        const res = yield* request({
          method: "POST", url: "/v1/ingest/ancient/records", key: secret, contentType: "application/x-ndjson",
          body: line("before", "0000-01-01T00:00:00+23:59") + line("utc", "0000-01-01T00:00:00Z") + line("today", new Date().toISOString())
        })
        assert.strictEqual(res.statusCode, 202, res.body)
        const job = yield* jobEnded((res.json() as { jobId: string }).jobId)
        assert.deepInclude(job, { state: "done", linesRead: 3, linesRejected: 1, recordsCommitted: 2 })
        assert.deepStrictEqual(job.errors.map((e) => [e.line, e.column]), [[1, "time"]])
        assert.match(job.errors[0]!.reason, /before 0000-01-01T00:00:00Z/)
      }))

    it.effect("five lines naming 10,000 segments each for one user load: the profile's records go in commands of at most 2,000 (one Apply of 50,000 records, 8 MB, waited for good)", () =>
      Effect.gen(function*() {
        const codes = Array.from({ length: 10_000 }, (_, i) => `c${i}`)
        const res = yield* request({
          method: "PUT", url: "/v1/entities/partner/wide", body: {
            name: "Wide",
            formatSpec: { format: "delimited", delimiter: ",", header: true, userId: "user", idKind: "cookie", segments: { kind: "list", column: "segs", separator: "|" }, mode: "incremental" },
            segmentMap: Object.fromEntries(codes.map((code, i) => [code, String(500_000 + i)]))
          }
        })
        assert.oneOf(res.statusCode, [200, 201], res.body)
        const { secret } = yield* createKey("partner:wide")
        const file = "user,segs\n" + `wide-user,${codes.join("|")}\n`.repeat(5)
        const upload = yield* request({ method: "POST", url: "/v1/ingest/wide/files", key: secret, contentType: "text/csv", body: file })
        assert.strictEqual(upload.statusCode, 202, upload.body)
        const job = yield* jobEnded((upload.json() as { jobId: string }).jobId, "90 seconds")
        assert.deepInclude(job, { state: "done", linesRead: 5, linesRejected: 0, recordsAccepted: 50_000 })
        assert.strictEqual(job.duplicates + job.recordsCommitted, 50_000)
        const profile = yield* request({ method: "GET", url: "/v1/profiles/cookie/wide-user" })
        assert.strictEqual((profile.json() as { segments: Array<unknown> }).segments.length, 10_000)
        const revision = (profile.json() as { revision: number }).revision

        // Then 2,000 loader lines alternating add and remove of one of them, at one time (the later line
        // wins): an event each, before, and each a copy of the 10,000 memberships when decided, applied
        // and read; the event loop was held over a minute at each (stop 23's second outside attack).
        const later = new Date((yield* Clock.currentTimeMillis) + 3_600_000).toISOString() // after the first file's (its receipt)
        const flip = Array.from({ length: 2_000 }, (_, i) =>
          `{"idKind":"cookie","userId":"wide-user","segmentId":"500000","op":"${i % 2 === 0 ? "remove" : "add"}","time":"${later}"}\n`).join("")
        const flipped = yield* request({ method: "POST", url: "/v1/ingest/wide/files", key: secret, contentType: "application/x-ndjson", body: flip })
        assert.strictEqual(flipped.statusCode, 202, flipped.body)
        const flipJob = yield* jobEnded((flipped.json() as { jobId: string }).jobId, "90 seconds")
        assert.deepInclude(flipJob, { state: "done", linesRead: 2_000, linesRejected: 0 })
        const after = yield* request({ method: "GET", url: "/v1/profiles/cookie/wide-user?explain=true" })
        const segments = (after.json() as { segments: Array<{ segmentId: string; sources: Array<{ line: number }> }> }).segments
        assert.strictEqual(segments.length, 10_000)
        assert.deepStrictEqual(segments.find((s) => s.segmentId === "500000")?.sources.map((s) => s.line), [2_000])
        assert.isAtMost((after.json() as { revision: number }).revision - revision, 2, "one command: its removes and its adds, two events at most")
      }), { timeout: 240_000 })

    it.effect("one partner giving one user more memberships than maxProfileMemberships: the lines past it are rejected naming the limit, the rest load, and other partners still add the user", () =>
      Effect.gen(function*() {
        // Before (stop 26's outside attack), one partner gave one user 280,000 memberships: every command
        // folded them all, `/ready` took 20.6 s and another partner's real-time jobs waited 7.9 s at p50.
        yield* putPartner("fat", "active")
        const { secret } = yield* createKey("partner:fat")
        const time = new Date((yield* Clock.currentTimeMillis) - 60_000).toISOString()
        const lines = Array.from({ length: maxProfileMemberships + 50 }, (_, i) =>
          `{"idKind":"cookie","userId":"fat-user","segmentId":"${700_000 + i}","op":"add","time":"${time}"}\n`).join("")
        const upload = yield* request({ method: "POST", url: "/v1/ingest/fat/files", key: secret, contentType: "application/x-ndjson", body: lines })
        assert.strictEqual(upload.statusCode, 202, upload.body)
        const job = yield* jobEnded((upload.json() as { jobId: string }).jobId, "120 seconds")
        assert.deepInclude(job, { state: "done", linesRead: maxProfileMemberships + 50, linesRejected: 50, recordsCommitted: maxProfileMemberships })
        assert.match(job.errors[0]!.reason, new RegExp(`more than ${maxProfileMemberships}`))
        const profile = yield* request({ method: "GET", url: "/v1/profiles/cookie/fat-user" })
        assert.strictEqual((profile.json() as { segments: Array<unknown> }).segments.length, maxProfileMemberships)
        // the limit is each partner's: another partner still adds the user to its segment
        yield* putPartner("slim", "active")
        const slim = yield* createKey("partner:slim")
        const res = yield* request({
          method: "POST", url: "/v1/ingest/slim/records", key: slim.secret, contentType: "application/x-ndjson",
          body: `{"idKind":"cookie","userId":"fat-user","segmentId":"42","op":"add","time":"${time}"}\n`
        })
        assert.strictEqual(res.statusCode, 202, res.body)
        assert.deepInclude(yield* jobEnded((res.json() as { jobId: string }).jobId), { state: "done", linesRejected: 0, recordsCommitted: 1 })
      }), { timeout: 240_000 })

    it.effect("a partner told its allowedSegments cannot feed another segment: such a loader record is rejected on its line, and a segment map outside them is 400", () =>
      Effect.gen(function*() {
        // stop 26's outside attack: loader records named any platform segment, mapped or not
        const put = (fields: Record<string, unknown>) => request({ method: "PUT", url: "/v1/entities/partner/fenced", body: { name: "Partner fenced", ...fields } })
        assert.oneOf((yield* put({ allowedSegments: ["501", "502"] })).statusCode, [200, 201])
        const { secret } = yield* createKey("partner:fenced")
        const time = new Date().toISOString()
        const line = (segmentId: string) => `{"idKind":"cookie","userId":"fenced-user","segmentId":"${segmentId}","op":"add","time":"${time}"}`
        const res = yield* request({
          method: "POST", url: "/v1/ingest/fenced/records", key: secret, contentType: "application/x-ndjson",
          body: [line("501"), line("900"), line("502")].join("\n") + "\n"
        })
        assert.strictEqual(res.statusCode, 202, res.body)
        const job = yield* jobEnded((res.json() as { jobId: string }).jobId)
        assert.deepInclude(job, { state: "done", linesRejected: 1, recordsCommitted: 2 })
        assert.deepStrictEqual(job.errors.map((e) => [e.line, e.column]), [[2, "segmentId"]])
        assert.match(job.errors[0]!.reason, /segment 900 is not among the partner's allowedSegments/)
        const profile = (yield* request({ method: "GET", url: "/v1/profiles/cookie/fenced-user" })).json() as { segments: Array<{ segmentId: string }> }
        assert.deepStrictEqual(profile.segments.map((s) => s.segmentId).sort(), ["501", "502"])
        // a format spec's map is held to the same segments
        const spec = { format: "delimited", header: false, columnCount: 2, userId: 1, idKind: "cookie", segments: { kind: "list", column: 2, separator: "|" } }
        const outside = assertProblem(yield* put({ allowedSegments: ["501"], formatSpec: spec, segmentMap: { a: "501", b: "900" } }), 400, "invalid-request")
        assert.deepStrictEqual(outside.errors?.map((e) => e.pointer), ["/segmentMap/b"])
        assert.strictEqual((yield* put({ allowedSegments: ["501"], formatSpec: spec, segmentMap: { a: "501" } })).statusCode, 200)
      }))

    it.effect("a real-time body of only a byte-order mark or blank lines is 400, like an empty one, and makes no job", () =>
      Effect.gen(function*() {
        yield* putPartner("blank", "active")
        const { secret } = yield* createKey("partner:blank")
        for (const body of ["\uFEFF", "\n\n", "\uFEFF\r\n"]) {
          const problem = assertProblem(
            yield* request({ method: "POST", url: "/v1/ingest/blank/records", key: secret, contentType: "application/x-ndjson", body }),
            400,
            "invalid-request"
          )
          assert.strictEqual(problem.errors?.[0]?.in, "body")
        }
        const jobs = yield* request({ method: "GET", url: "/v1/ingest/blank/jobs" })
        assert.deepStrictEqual((jobs.json() as { jobs: Array<unknown> }).jobs, [])
      }))
  })
})
