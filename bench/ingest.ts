/**
 * Ingestion (issue 7, item 10). A generated partner file of BENCH_INGEST_LINES lines (default
 * 1,000,000: as many distinct users, 3 segments a line, 5% malformed; bench/ingestFile.ts):
 *
 * - CEILING: the same file parsed by csv-parse and inserted by a plain loop into SQLite, one row a line
 *   (bench/ingestCeiling.ts).
 * - FIGURE: the platform in its own process (`api/main.ts`, as `npm start` runs it), the file sent by
 *   the CLI's upload code, from the first byte sent to the job `done` with every record committed:
 *   lines/s, and the platform's peak RSS (VmHWM of its process) and nats-server's, and the disk the
 *   JetStream store and the event store take.
 * - FRESHNESS, while the file loads: every ~100 ms a real-time record for a new user is POSTed (by a
 *   second partner, so it does not queue behind the file in the first partner's translator), and the
 *   time from its 202 to the profile showing it (GET /v1/profiles/…) is measured: p50, p99.
 * - BIG (only with BENCH_INGEST_BIG=1): the platform's peak RSS while it takes a 1 GB file of
 *   BENCH_INGEST_BIG_LINES lines (default 20,000,000) for BENCH_INGEST_BIG_USERS distinct users
 *   (default as many as lines), and nats-server's RSS and disk. Bounded in time: the whole file is
 *   uploaded (the upload's own peak RSS reported), then translated for BENCH_INGEST_BIG_MINUTES
 *   (default 10) — at a few thousand lines/s the whole file would take hours — and the peak over
 *   upload and window is reported with the lines translated in it; the job is left unfinished.
 *
 * `npx node bench/ingest.ts` alone, or `npm run bench -- ingest`.
 */
import { mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises"
import { readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { followJob } from "../api/cli/follow.ts"
import { jobLine, ProgressView } from "../api/cli/progress.ts"
import { uploadFile } from "../api/cli/upload.ts"
import type { Job } from "../domain/ingest/Job.ts"
import { freePort, readPidFile } from "../infra/nats/NatsServer.ts"
import { ceiling } from "./ingestCeiling.ts"
import { formatSpec, generateFile, segmentMap, userOf, type GeneratedFile } from "./ingestFile.ts"
import { BENCH_ADMIN_KEY } from "./platform.ts"
import { sleep, start, stop, until } from "./processes.ts"
import { cpuSeconds } from "./cpuTime.ts"
import { latencies, round2 } from "./stats.ts"
import type { SummaryRow } from "./summary.ts"

const lines = Number(process.env.BENCH_INGEST_LINES ?? 1_000_000)
const big = process.env.BENCH_INGEST_BIG === "1"
const bigLines = Number(process.env.BENCH_INGEST_BIG_LINES ?? 20_000_000)
const bigUsers = Number(process.env.BENCH_INGEST_BIG_USERS ?? bigLines)
const bigMinutes = Number(process.env.BENCH_INGEST_BIG_MINUTES ?? 10)
const target = 0.3
const MB = 1024 * 1024

const admin = { authorization: `Bearer ${BENCH_ADMIN_KEY}`, "content-type": "application/json" }

/** VmRSS and VmHWM (peak) of a process, in MiB. */
const memory = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN)
  return { rssMiB: round2(kb("VmRSS") / 1024), peakRssMiB: round2(kb("VmHWM") / 1024) }
}


/** Bytes in a directory, recursively. */
const diskBytes = async (dir: string): Promise<number> => {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name)
    total += entry.isDirectory() ? await diskBytes(path) : entry.isFile() ? (await stat(path)).size : 0
  }
  return total
}

const put = async (base: string, path: string, body: unknown) => {
  const response = await fetch(`${base}${path}`, { method: "PUT", headers: admin, body: JSON.stringify(body) })
  if (!response.ok) throw new Error(`PUT ${path} → ${response.status} ${await response.text()}`)
}

const partnerKey = async (base: string, partner: string) => {
  const response = await fetch(`${base}/v1/admin/keys`, { method: "POST", headers: admin, body: JSON.stringify({ name: `bench ${partner}`, role: `partner:${partner}` }) })
  if (!response.ok) throw new Error(`POST /v1/admin/keys → ${response.status} ${await response.text()}`)
  return ((await response.json()) as { secret: string }).secret
}

const freshSegment = segmentMap.s99!

/**
 * Every ~100 ms until `stop()`: a real-time record for a new user, then the profile polled until it
 * shows the segment; the 202 → visible times in ms.
 */
const freshness = (base: string, key: string) => {
  const times: Array<number> = []
  const failures: Array<string> = []
  const probes: Array<Promise<void>> = []
  let running = true
  const probe = (n: number) => probeOnce(n).catch((error: unknown) => void failures.push(`fresh-${n}: ${String((error as Error).cause ?? error)}`))
  const probeOnce = async (n: number) => {
    const user = `fresh-${n}`
    const record = { idKind: "cookie", userId: user, segmentId: freshSegment, op: "add", time: new Date().toISOString() }
    const posted = await fetch(`${base}/v1/ingest/bench-rt/records`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/x-ndjson" },
      body: `${JSON.stringify(record)}\n`
    })
    const accepted = performance.now()
    if (posted.status !== 202) return void failures.push(`POST records → ${posted.status} ${await posted.text()}`)
    const seen = await until(async () => {
      const profile = await fetch(`${base}/v1/profiles/cookie/${user}`, { headers: admin })
      if (!profile.ok) return false
      const body = (await profile.json()) as { segments: Array<{ segmentId: string }> }
      return body.segments.some((s) => s.segmentId === freshSegment)
    }, 600_000, 100).then(() => true, () => false)
    if (seen) times.push(performance.now() - accepted)
    else failures.push(`${user} not visible within 10 minutes`)
  }
  // at most 20 records waiting to be seen (each polled every 100 ms), so the probes cannot load the platform themselves
  let waiting = 0
  let skipped = 0
  const loop = (async () => {
    for (let n = 0; running; n++) {
      if (waiting >= 20) skipped++
      else {
        waiting++
        probes.push(probe(n).finally(() => waiting--))
      }
      await sleep(100)
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      await Promise.all(probes)
      return { ...latencies(times), failures: failures.length, firstFailure: failures[0], skippedWhileTwentyWaited: skipped }
    }
  }
}

interface PlatformRun {
  readonly job: Job
  readonly seconds: number
  readonly linesPerSecond: number
  readonly platform: { readonly peakRssMiB: number; readonly sampledMaxRssMiB: number; readonly cpuSeconds: number; readonly cpuMsPerLine: number }
  readonly natsServer: { readonly peakRssMiB: number; readonly diskMiB: number }
  readonly eventStoreDiskMiB: number
  readonly uploadsDiskMiB?: number
  readonly freshness?: ReturnType<typeof latencies> & { readonly failures: number; readonly firstFailure?: string | undefined; readonly skippedWhileTwentyWaited: number }
  readonly profilesChecked: number
  /** a bounded run: the upload, then `minutes` of translation (the job unfinished) */
  readonly window?: { readonly minutes: number; readonly uploadSeconds: number; readonly uploadPeakRssMiB: number; readonly linesTranslated: number; readonly recordsCommitted: number }
}

/**
 * The platform in its own process ingesting `file`; with `fresh`, real-time records measured meanwhile;
 * with `minutes`, only the upload and that many minutes of translation.
 */
const platformRun = async (dir: string, file: GeneratedFile, fresh: boolean, minutes?: number): Promise<PlatformRun> => {
  const dataDir = join(dir, "data")
  await mkdir(dataDir)
  const natsPort = await Effect.runPromise(freePort())
  const running = await start({ DATA_DIR: dataDir, NATS_PORT: String(natsPort), FTP_ENABLED: "false", SFTP_ENABLED: "false" })
  const pid = running.child.pid!
  try {
    await put(running.base, "/v1/entities/partner/bench", { name: "Bench partner", formatSpec, segmentMap })
    await put(running.base, "/v1/entities/partner/bench-rt", { name: "Bench real-time partner", segmentMap })
    const key = await partnerKey(running.base, "bench")
    const rtKey = await partnerKey(running.base, "bench-rt")
    let sampledMaxRssMiB = 0
    const sampler = setInterval(() => {
      sampledMaxRssMiB = Math.max(sampledMaxRssMiB, memory(pid).rssMiB)
    }, 500)
    const api = { url: running.base, key }
    const cpuBefore = cpuSeconds(pid)
    const started = performance.now()
    const probes = fresh ? freshness(running.base, rtKey) : undefined
    let job: Job
    let window: PlatformRun["window"]
    try {
      const accepted = await Effect.runPromise(uploadFile(api, { partner: "bench", file: file.path, format: "partner" }))
      const uploadSeconds = (performance.now() - started) / 1000
      const uploadPeakRssMiB = memory(pid).peakRssMiB
      const view = new ProgressView({ write: (text) => process.stderr.write(text) }, 10_000)
      let last: Job | undefined
      const follow = followJob(api, accepted.jobId, { every: "1 second", onUpdate: (j) => {
        last = j
        view.update(`  ${jobLine(j)}`)
      } })
      if (minutes === undefined) job = await Effect.runPromise(follow)
      else {
        const finished = await Effect.runPromise(follow.pipe(Effect.timeoutOption(`${minutes} minutes`)))
        job = finished._tag === "Some" ? finished.value : last!
        window = { minutes, uploadSeconds: round2(uploadSeconds), uploadPeakRssMiB, linesTranslated: job.linesRead, recordsCommitted: job.recordsCommitted }
      }
    } finally {
      clearInterval(sampler)
    }
    const seconds = (performance.now() - started) / 1000
    const cpu = round2(cpuSeconds(pid) - cpuBefore)
    const freshnessResult = await probes?.stop()
    if (window !== undefined) {
      const natsPid = readPidFile(join(dataDir, "nats-server.pid"))
      const natsDiskMiB = round2((await diskBytes(join(dataDir, "nats"))) / MB)
      const uploadsDiskMiB = round2((await diskBytes(join(dataDir, "uploads"))) / MB)
      return {
        job,
        seconds: round2(seconds),
        // translation only: lines read in the window
        linesPerSecond: Math.round(window.linesTranslated / (window.minutes * 60)),
        platform: { peakRssMiB: memory(pid).peakRssMiB, sampledMaxRssMiB, cpuSeconds: cpu, cpuMsPerLine: round2((cpu * 1000) / Math.max(1, window.linesTranslated)) },
        natsServer: { peakRssMiB: natsPid._tag === "Some" ? memory(natsPid.value).peakRssMiB : Number.NaN, diskMiB: natsDiskMiB },
        // the stored upload (the whole file) apart
        eventStoreDiskMiB: round2((await diskBytes(dataDir)) / MB - natsDiskMiB - uploadsDiskMiB),
        uploadsDiskMiB,
        profilesChecked: 0,
        window
      }
    }
    if (job.state !== "done") throw new Error(`the job ended ${job.state}: ${job.failure ?? ""} ${JSON.stringify(job.errors.slice(0, 3))}`)
    if (job.recordsCommitted + job.duplicates !== file.records || job.linesRejected !== file.lines - file.goodLines) {
      throw new Error(`the job does not account for the file: ${JSON.stringify(job)} (expected ${file.records} records, ${file.lines - file.goodLines} rejected lines)`)
    }
    // a sample of profiles, each with its three segments
    const sample = [0, 1, 2, Math.floor(file.lines / 2), file.lines - 1].filter((i) => i % 20 !== 7 && i < file.lines)
    for (const i of sample) {
      const profile = await fetch(`${running.base}/v1/profiles/cookie/${userOf(i, file.users)}`, { headers: admin })
      const body = (await profile.json()) as { segments?: Array<unknown> }
      if (!profile.ok || (body.segments?.length ?? 0) < 3) throw new Error(`profile of line ${i + 2}: ${profile.status} ${JSON.stringify(body)}`)
    }
    const natsPid = readPidFile(join(dataDir, "nats-server.pid"))
    const natsServer = natsPid._tag === "Some"
      ? { peakRssMiB: memory(natsPid.value).peakRssMiB, diskMiB: round2((await diskBytes(join(dataDir, "nats"))) / MB) }
      : { peakRssMiB: Number.NaN, diskMiB: round2((await diskBytes(join(dataDir, "nats"))) / MB) }
    const eventStoreDiskMiB = round2((await diskBytes(dataDir)) / MB - natsServer.diskMiB)
    return {
      job,
      seconds: round2(seconds),
      linesPerSecond: Math.round(file.lines / seconds),
      platform: { peakRssMiB: memory(pid).peakRssMiB, sampledMaxRssMiB, cpuSeconds: cpu, cpuMsPerLine: round2((cpu * 1000) / file.lines) },
      natsServer,
      eventStoreDiskMiB,
      ...(freshnessResult === undefined ? {} : { freshness: freshnessResult }),
      profilesChecked: sample.length
    }
  } finally {
    await stop(running, "SIGTERM")
  }
}

const withDir = async <A>(prefix: string, f: (dir: string) => Promise<A>) => {
  const dir = await mkdtemp(join(tmpdir(), `tributary-bench-${prefix}-`))
  try {
    return await f(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

export const benchIngest = async () => {
  const epoch = Math.floor(Date.now() / 1000) - 3600
  const main = await withDir("ingest", async (dir) => {
    const file = await generateFile(join(dir, "partner.csv"), lines, lines, epoch)
    const ceilingRun = await ceiling(file.path, join(dir, "ceiling.db"))
    const figure = await platformRun(dir, file, true)
    return { file: { lines: file.lines, users: file.users, bytes: file.bytes, malformed: file.lines - file.goodLines, records: file.records }, ceiling: ceilingRun, figure }
  })
  const bigRun = big
    ? await withDir("ingest-big", async (dir) => {
      const file = await generateFile(join(dir, "big.csv"), bigLines, bigUsers, epoch)
      const run = await platformRun(dir, file, false, bigMinutes)
      return { file: { lines: file.lines, users: file.users, bytes: file.bytes }, ...run, job: { ...run.job, errors: run.job.errors.slice(0, 3) } }
    })
    : { notRun: "set BENCH_INGEST_BIG=1 (about 20 million lines, 1 GB: the upload, then BENCH_INGEST_BIG_MINUTES of translation)" }
  const ratio = round2(main.figure.linesPerSecond / main.ceiling.linesPerSecond)
  const f = main.figure
  const result = {
    name: "ingest",
    setup: { lines, users: lines, segmentsPerLine: 3, malformed: "5% (every 20th line)", format: "CSV with header, one segment column", freshnessPartner: "a second partner, loader-format real-time records every ~100 ms" },
    ...main,
    figure: { ...f, job: { ...f.job, errors: f.job.errors.slice(0, 3) } },
    ratio,
    target: `>= ${target}`,
    big: bigRun
  }
  const rows: Array<SummaryRow> = [
    {
      benchmark: `ingest: a ${main.file.lines.toLocaleString("en-US")}-line partner file (CSV, 3 segments a line, 5% malformed): upload → job done, lines/s`,
      figure: `${f.linesPerSecond}/s (${f.seconds} s; platform peak RSS ${f.platform.peakRssMiB} MiB, ${f.platform.cpuMsPerLine} CPU ms a line, nats-server ${f.natsServer.peakRssMiB} MiB)`,
      ceiling: `csv-parse + plain SQLite inserts ${main.ceiling.linesPerSecond}/s`,
      ratio,
      target: `>= ${target}`,
      pass: ratio >= target
    },
    ...(f.freshness === undefined ? [] : [{
      benchmark: "ingest: freshness while the file loads: real-time record 202 → profile shows it",
      figure: `p50 ${round2(f.freshness.p50)} ms, p99 ${round2(f.freshness.p99)} ms (${f.freshness.count} records${f.freshness.failures > 0 ? `, ${f.freshness.failures} failed` : ""})`,
      ceiling: "—",
      ratio: Number.NaN,
      target: "none set (report); the seed's partners: 6–24 h"
    }]),
    "notRun" in bigRun
      ? { benchmark: "ingest: peak RSS ingesting a 1 GB file", figure: "not run (BENCH_INGEST_BIG=1)", ceiling: "—", ratio: Number.NaN, target: "< 400 MB" }
      : {
        benchmark: `ingest: peak RSS taking a ${round2(bigRun.file.bytes / 1e9)} GB file (${bigRun.file.lines.toLocaleString("en-US")} lines, ${bigRun.file.users.toLocaleString("en-US")} users): the whole upload, then ${bigMinutes} min of translation`,
        figure: `platform ${bigRun.platform.peakRssMiB} MiB (upload alone ${bigRun.window?.uploadPeakRssMiB} MiB, ${bigRun.window?.uploadSeconds} s); ${bigRun.window?.linesTranslated.toLocaleString("en-US")} lines translated, ${bigRun.linesPerSecond} lines/s; nats-server ${bigRun.natsServer.peakRssMiB} MiB, ${bigRun.natsServer.diskMiB} MiB on disk`,
        ceiling: "—",
        ratio: Number.NaN,
        target: "< 400 MB",
        pass: bigRun.platform.peakRssMiB * MB < 400e6
      }
  ]
  return { result, rows }
}

if (import.meta.main) {
  const { result, rows } = await benchIngest()
  console.log(JSON.stringify(result, null, 2))
  console.log(rows)
  process.exit(0)
}
