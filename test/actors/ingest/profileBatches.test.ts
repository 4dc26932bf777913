import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { addBatch, empty, forTally, fromCheckpoint, checkpointOf, unreconciled } from "../../../actors/ingest/JobTally.ts"
import { profileCommands } from "../../../actors/ingest/profileBatches.ts"
import { segmentChanges } from "../../../actors/ingest/replaceMode.ts"
import { type CommandReply, outcomeOf } from "../../../domain/CommandBus.ts"
import { EntityCommand, InvalidCommand } from "../../../domain/entity.ts"
import { MAX_ERROR_CHARS } from "../../../domain/ingest/Job.ts"
import type { LoaderRecord } from "../../../domain/ingest/LoaderRecord.ts"
import { Apply } from "../../../domain/ingest/profileEvents.ts"

const record = (userId: string, segmentId: string, extra: Partial<LoaderRecord> = {}): LoaderRecord =>
  ({ idKind: "cookie", userId, segmentId, op: "add", time: "2026-11-01T00:00:00.000Z", ...extra })
const context = { partner: "acme", jobId: "job-1", digest: "d1", defaultTtlSeconds: 86_400 }
const snapshot = { type: "userprofile", id: "x", revision: 0, position: 0, deleted: false, state: {}, createdAt: null, updatedAt: null }
const accepted = (outcome: "created" | "updated" | "unchanged"): CommandReply => ({ _tag: "Accepted", outcome, entity: snapshot })

describe("profile batches", () => {
  it("groups a batch's records into one Apply per profile, records in line order, each with its source and the partner's default TTL", () => {
    const commands = profileCommands([
      { line: 2, records: [record("u1", "1"), record("u2", "1")] },
      { line: 3, records: [record("u1", "2", { ttlSeconds: 60 }), record("a.b", "3", { op: "remove" })] },
      { line: 5, records: [record("u1", "3")] }
    ], context, { fromLine: 2, toLine: 5 })
    assert.deepStrictEqual(commands.map((c) => c.command.entityId), ["cookie:u1", "cookie:u2", `cookie:~${Buffer.from("a.b").toString("base64url")}`])
    assert.deepStrictEqual(commands.map((c) => [c.lines, c.records]), [[[2, 3, 5], 3], [[2], 1], [[3], 1]])
    const u1 = commands[0]!
    Schema.decodeUnknownSync(EntityCommand)(u1.command)
    const apply = Schema.decodeUnknownSync(Apply)(u1.command.action)
    assert.deepStrictEqual(apply.records.map((r) => [r.segmentId, r.ttlSeconds, r.source.line]), [["1", 86_400, 2], ["2", 60, 3], ["3", 86_400, 5]])
    assert.deepStrictEqual(apply.records[0]!.source, { partner: "acme", jobId: "job-1", digest: "d1", line: 2 })
    assert.strictEqual(u1.command.entityType, "userprofile")
    assert.strictEqual(u1.command.correlationId, "job-1")
  })

  it("splits a profile's records past maxRecords at a line (a line's records stay together), each part a command of its own, in line order", () => {
    const many = (line: number, n: number) => ({ line, records: Array.from({ length: n }, (_, k) => record("u1", String(line * 100 + k))) })
    const commands = profileCommands([many(1, 2), many(2, 2), { line: 3, records: [record("u2", "9")] }, many(4, 5), many(5, 1)], context, { fromLine: 1, toLine: 5 }, 3)
    assert.deepStrictEqual(commands.map((c) => [c.command.entityId, c.lines, c.records]), [
      ["cookie:u1", [1, 2], 4],
      ["cookie:u1", [4], 5],
      ["cookie:u1", [5], 1],
      ["cookie:u2", [3], 1]
    ])
    const ids = commands.map((c) => c.command.commandId)
    assert.deepStrictEqual(ids.slice(0, 3), ["ingest:job-1:1-5:cookie:u1", "ingest:job-1:1-5:cookie:u1#1", "ingest:job-1:1-5:cookie:u1#2"])
    assert.deepStrictEqual(
      commands.slice(0, 3).flatMap((c) => Schema.decodeUnknownSync(Apply)(c.command.action).records.map((r) => r.segmentId)),
      ["100", "101", "200", "201", "400", "401", "402", "403", "404", "500"]
    )
    assert.deepStrictEqual([...segmentChanges(commands[1]!).keys()], ["400", "401", "402", "403", "404"])
  })

  it("marks each segment with the record that decides it: the newest by time, an add at the same time, not the last line", () => {
    const at = (hour: number) => `2026-11-01T${String(hour).padStart(2, "0")}:00:00.000Z`
    const [command] = profileCommands([
      { line: 1, records: [record("u1", "1", { op: "remove", time: at(11) }), record("u1", "2", { op: "remove", time: at(10) })] },
      { line: 2, records: [record("u1", "1", { time: at(10) }), record("u1", "2", { time: at(10) }), record("u1", "3", { time: at(9) })] },
      { line: 3, records: [record("u1", "3", { op: "remove", time: at(12) })] }
    ], context, { fromLine: 1, toLine: 3 })
    const hours = (ms: number) => new Date(ms).getUTCHours()
    assert.deepStrictEqual([...segmentChanges(command!)].map(([segment, { present, time }]) => [segment, present, hours(time)]), [
      ["1", false, 11],
      ["2", true, 10],
      ["3", false, 12]
    ])
  })

  it("names each command by job, line range and profile, so the same batch sent again is the same command", () => {
    const lines = [{ line: 7, records: [record("u1", "1")] }]
    const once = profileCommands(lines, context, { fromLine: 7, toLine: 9 })[0]!.command.commandId
    assert.strictEqual(profileCommands(lines, context, { fromLine: 7, toLine: 9 })[0]!.command.commandId, once)
    assert.notStrictEqual(profileCommands(lines, context, { fromLine: 6, toLine: 9 })[0]!.command.commandId, once)
    assert.notStrictEqual(profileCommands(lines, { ...context, jobId: "job-2" }, { fromLine: 7, toLine: 9 })[0]!.command.commandId, once)
  })
})

describe("a job's tally", () => {
  const commands = profileCommands([
    { line: 1, records: [record("u1", "1"), record("u1", "2")] },
    { line: 3, records: [record("u2", "1")] },
    { line: 4, records: [record("u3", "1")] }
  ], context, { fromLine: 1, toLine: 4 })
  const lines = [
    { _tag: "Records" as const, line: 1, records: 2 },
    { _tag: "Rejected" as const, error: { line: 2, column: 3, reason: "unknown segment code X" } },
    { _tag: "Records" as const, line: 3, records: 1 },
    { _tag: "Records" as const, line: 4, records: 1 }
  ]

  it("counts committed records, duplicates (a profile answering unchanged) and rejected lines, and reconciles", () => {
    const tally = addBatch(empty, lines, commands, [accepted("created"), accepted("unchanged"), accepted("updated")])
    assert.deepStrictEqual(tally.counts, { linesRead: 4, recordsAccepted: 4, linesRejected: 1, duplicates: 1, recordsCommitted: 3 })
    assert.deepStrictEqual(tally.errors, [{ line: 2, column: 3, reason: "unknown segment code X" }])
    assert.isUndefined(unreconciled(tally))
  })

  it("counts every record a duplicate when the same file was already loaded", () => {
    const tally = addBatch(empty, lines, commands, "duplicate")
    assert.deepStrictEqual(tally.counts, { linesRead: 4, recordsAccepted: 4, linesRejected: 1, duplicates: 4, recordsCommitted: 0 })
    assert.isUndefined(unreconciled(tally))
  })

  it("turns a profile's refusal into rejected lines with the reason, still reconciling", () => {
    const refused: CommandReply = { _tag: "Rejected", error: new InvalidCommand({ entityType: "userprofile", issues: [{ path: ["records", 0, "time"], message: "bad time" }] }) }
    const tally = addBatch(empty, lines, commands, [accepted("created"), refused, accepted("created")])
    assert.deepStrictEqual(tally.counts, { linesRead: 4, recordsAccepted: 3, linesRejected: 2, duplicates: 0, recordsCommitted: 3 })
    assert.strictEqual(tally.errors[1]!.line, 3)
    assert.match(tally.errors[1]!.reason, /records\.0\.time: bad time/)
    assert.isUndefined(unreconciled(tally))
  })

  it("keeps only the first 100 errors, counting all", () => {
    const many = Array.from({ length: 150 }, (_, i) => ({ _tag: "Rejected" as const, error: { line: i + 1, reason: "bad" } }))
    const tally = addBatch(addBatch(empty, many.slice(0, 60), [], []), many.slice(60), [], [])
    assert.strictEqual(tally.counts.linesRejected, 150)
    assert.strictEqual(tally.errors.length, 100)
    assert.strictEqual(tally.errors.at(-1)!.line, 100)
  })

  it("cuts an error's reason and column to MAX_ERROR_CHARS, saying how long they were", () => {
    // the third attack of stop 27: reasons quoting 60 KB codes made a job's report 6 MB, 19 ms a read
    const code = "x".repeat(60_000)
    const tally = addBatch(empty, [{ _tag: "Rejected" as const, error: { line: 1, column: code, reason: `unknown segment code ${code}` } }], [], [])
    const [error] = tally.errors
    assert.strictEqual(error!.reason, `unknown segment code ${"x".repeat(MAX_ERROR_CHARS - 21)}… (60021 characters)`)
    assert.strictEqual(error!.column, `${"x".repeat(MAX_ERROR_CHARS)}… (60000 characters)`)
    assert.deepStrictEqual(addBatch(empty, lines, commands, "duplicate").errors, [{ line: 2, column: 3, reason: "unknown segment code X" }])
  })

  it("resumes from a checkpoint with the same counts, and a wrong count does not reconcile", () => {
    const tally = addBatch(empty, lines, commands, [accepted("created"), accepted("created"), accepted("created")])
    const resumed = fromCheckpoint(checkpointOf(tally, 4, 100))
    assert.deepStrictEqual(resumed, tally)
    assert.isString(unreconciled({ ...resumed, counts: { ...resumed.counts, recordsCommitted: 3 } }))
    assert.isString(unreconciled({ ...resumed, linesAccepted: 2 }))
  })

  it("refuses to tally a command left without an answer (the caller retries those first)", () => {
    assert.throws(() => addBatch(empty, lines, commands, [accepted("created"), { _tag: "Failed", message: "store" }, accepted("created")]))
  })

  it("a batch waiting for its tally keeps no command's records, and tallies its outcomes as the full replies", () => {
    const refused: CommandReply = { _tag: "Rejected", error: new InvalidCommand({ entityType: "userprofile", issues: [{ path: ["records", 0, "time"], message: "bad time" }] }) }
    const replies = [accepted("created"), refused, accepted("unchanged")]
    const light = forTally(commands, replies.map(outcomeOf))
    assert.deepStrictEqual(addBatch(empty, lines, light.commands, light.replies), addBatch(empty, lines, commands, replies))
    assert.isFalse(JSON.stringify(light).includes("records\":["), "no command's records kept")
    const duplicate = forTally(commands, "duplicate")
    assert.deepStrictEqual(addBatch(empty, lines, duplicate.commands, duplicate.replies), addBatch(empty, lines, commands, "duplicate"))
  })
})
