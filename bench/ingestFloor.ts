/**
 * What the history contract alone costs ingestion (not part of `npm run bench`): the least work a line
 * of the ingest benchmark's file must cause whatever the pipeline does — one `SegmentsAdded` event of a
 * new profile in the event store (one multi-stream append per 10,000 lines, as a shard's batch writes
 * them) and that event on HISTORY (`history.userprofile.<id>`, mirrored into READERS), published by
 * the platform's relay (infra/relay.ts) — on a nats-server with the platform's configuration and
 * topology. Beside it, in the same run, the ingest benchmark's ceiling (bench/ingestCeiling.ts: the
 * same number of lines parsed and inserted by a plain loop).
 *
 * Prints CPU µs per line of each part (this process: the append and its writer thread, then the
 * relay; nats-server: storing HISTORY and its mirror) and the lines a second those parts alone would
 * allow on this machine's cores if nothing else ran (translation, the bus, the shard appliers, the
 * projections and the job ledger all come on top), as a fraction of the ceiling. When that fraction is
 * below the ingest target's 0.3, no pipeline meets the target here while every event goes to HISTORY.
 *
 *   node bench/ingestFloor.ts            (BENCH_FLOOR_LINES, default 200,000)
 */
import { randomUUID } from "node:crypto"
import { availableParallelism } from "node:os"
import { join } from "node:path"
import { Effect, Fiber } from "effect"
import { EventStore } from "../domain/EventStore.ts"
import { StreamNames } from "../domain/subjects.ts"
import { makeSqlite } from "../infra/eventstore/sqlite.ts"
import { Nats, tryNats } from "../infra/nats/Nats.ts"
import { runRelay } from "../infra/relay.ts"
import { layerTestNats, TestNatsServer } from "../test/fixtures/nats.ts"
import { tempDir } from "../test/fixtures/tempDir.ts"
import { ceiling } from "./ingestCeiling.ts"
import { generateFile } from "./ingestFile.ts"
import { cpuSeconds } from "./cpuTime.ts"
import { round2 } from "./stats.ts"

const lines = Number(process.env.BENCH_FLOOR_LINES ?? 200_000)
/** streams a multi-stream append: a shard's batch of 10,000 lines */
const batch = 10_000


/** The event a line of the benchmark's file becomes: a new cookie profile joining three segments, with its source line. */
const lineEvent = (line: number) => {
  const jobId = "01a22781-3e3e-7f2e-b4fa-d5fb92d91ed9"
  const source = { partner: "bench", jobId, digest: "9f".repeat(32), line }
  const time = "2026-11-28T12:00:00.000Z"
  const entityId = `cookie:c${line.toString(36).padStart(8, "0")}`
  const commandId = `${jobId}:${line}`
  return {
    stream: `userprofile-${entityId}`,
    events: [{
      eventId: randomUUID(),
      type: "SegmentsAdded",
      data: { memberships: ["1001", "1002", "1003"].map((segmentId) => ({ partner: "bench", segmentId, time, expiresAt: "2026-12-28T12:00:00.000Z", source })) },
      metadata: { entityType: "userprofile", entityId, commandId, correlationId: jobId, causationId: commandId, commandFingerprint: "f".repeat(43) }
    }],
    expectedRevision: "no_stream" as const
  }
}

const run = Effect.gen(function*() {
  const dir = yield* tempDir("bench-ingest-floor")
  const { pid: natsPid } = yield* TestNatsServer
  const { manager } = yield* Nats
  const store = yield* makeSqlite({ path: join(dir, "events.db") })

  // 1. the event store: one append per shard batch
  const appendCpu = process.cpuUsage()
  for (let first = 0; first < lines; first += batch) {
    yield* store.appendToStreams(Array.from({ length: Math.min(batch, lines - first) }, (_, i) => lineEvent(first + i)))
  }
  const append = process.cpuUsage(appendCpu)

  // 2. the relay: every event on HISTORY
  const historyCount = tryNats("HISTORY info", () => manager.streams.info(StreamNames.history)).pipe(Effect.map((info) => info.state.messages))
  const natsBefore = cpuSeconds(natsPid)
  const relayCpu = process.cpuUsage()
  const started = performance.now()
  const relay = yield* Effect.forkChild(runRelay({}).pipe(Effect.provideService(EventStore, store)))
  for (;;) {
    if ((yield* historyCount) >= lines) break
    yield* Effect.sleep("100 millis")
  }
  const relaySeconds = (performance.now() - started) / 1000
  const relayed = process.cpuUsage(relayCpu)
  const natsSeconds = cpuSeconds(natsPid) - natsBefore
  yield* Fiber.interrupt(relay)

  // 3. the ceiling, same run
  const file = yield* Effect.promise(() => generateFile(join(dir, "partner.csv"), lines, lines, Math.floor(Date.now() / 1000) - 3600))
  const top = yield* Effect.promise(() => ceiling(file.path, join(dir, "ceiling.db")))

  const micros = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / lines
  const perLine = {
    append: round2(micros(append)),
    relay: round2(micros(relayed)),
    natsServer: round2((natsSeconds * 1e6) / lines)
  }
  const total = perLine.append + perLine.relay + perLine.natsServer
  const cores = availableParallelism()
  const floorLinesPerSecond = Math.round((cores * 1e6) / total)
  return {
    lines,
    cores,
    cpuMicrosPerLine: { ...perLine, total: round2(total) },
    relayEventsPerSecond: Math.round(lines / relaySeconds),
    floorLinesPerSecond,
    ceilingLinesPerSecond: Math.round(top.linesPerSecond),
    floorOverCeiling: round2(floorLinesPerSecond / top.linesPerSecond),
    target: 0.3
  }
}).pipe(Effect.provide(layerTestNats()), Effect.scoped)

console.log(JSON.stringify(await Effect.runPromise(run), null, 2))
process.exit(0)
