/**
 * Diagnostic (not a benchmark): the platform in its own process with its log kept, taking a generated
 * file of BENCH_INGEST_LINES lines; prints the job's progress and, at the end, its seconds and the
 * platform's CPU seconds, and leaves the log at BENCH_LOG.
 */
import { spawn } from "node:child_process"
import { mkdir, mkdtemp } from "node:fs/promises"
import { openSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { followJob } from "../api/cli/follow.ts"
import { jobLine } from "../api/cli/progress.ts"
import { uploadFile } from "../api/cli/upload.ts"
import { freePort } from "../infra/nats/NatsServer.ts"
import { formatSpec, generateFile, segmentMap } from "./ingestFile.ts"
import { cpuSeconds } from "./cpuTime.ts"
import { BENCH_ADMIN_KEY } from "./platform.ts"
import { until } from "./processes.ts"

const lines = Number(process.env.BENCH_INGEST_LINES ?? 50_000)
const dir = await mkdtemp(join(tmpdir(), "tributary-diag-"))
const dataDir = join(dir, "data")
await mkdir(dataDir)
const file = await generateFile(join(dir, "partner.csv"), lines, lines, Math.floor(Date.now() / 1000) - 3600)
const port = await Effect.runPromise(freePort())
const natsPort = await Effect.runPromise(freePort())
const log = openSync(process.env.BENCH_LOG ?? join(dir, "platform.log"), "w")
const child = spawn(process.execPath, ["--no-warnings", ...(process.env.PLATFORM_NODE_FLAGS ?? "").split(" ").filter(Boolean), fileURLToPath(new URL("../api/main.ts", import.meta.url))], {
  env: { ...process.env, HOST: "127.0.0.1", LOG_LEVEL: "Info", LOG_FORMAT: "json", ADMIN_API_KEY: BENCH_ADMIN_KEY, DATA_DIR: dataDir, NATS_PORT: String(natsPort), FTP_ENABLED: "false", SFTP_ENABLED: "false", PORT: String(port) },
  stdio: ["ignore", log, log]
})
const base = `http://127.0.0.1:${port}`
const admin = { authorization: `Bearer ${BENCH_ADMIN_KEY}`, "content-type": "application/json" }
try {
  await until(() => fetch(`${base}/ready`).then((r) => r.ok), 300_000)
  await fetch(`${base}/v1/entities/partner/bench`, { method: "PUT", headers: admin, body: JSON.stringify({ name: "Bench partner", formatSpec, segmentMap }) })
  const key = ((await (await fetch(`${base}/v1/admin/keys`, { method: "POST", headers: admin, body: JSON.stringify({ name: "bench", role: "partner:bench" }) })).json()) as { secret: string }).secret
  const api = { url: base, key }
  const started = performance.now()
  const accepted = await Effect.runPromise(uploadFile(api, { partner: "bench", file: file.path, format: "partner" }))
  const job = await Effect.runPromise(followJob(api, accepted.jobId, { every: "5 seconds", onUpdate: (j) => console.log(`${Math.round((performance.now() - started) / 1000)} s ${jobLine(j)}`) }))
  // the platform's CPU (all its threads, the upload included): steadier than the seconds on a shared machine
  const cpu = cpuSeconds(child.pid!)
  console.log(JSON.stringify({ state: job.state, seconds: (performance.now() - started) / 1000, cpuSeconds: cpu, cpuMicrosPerLine: Math.round(cpu / lines * 1e6), pid: child.pid }))
} finally {
  child.kill("SIGTERM")
}
