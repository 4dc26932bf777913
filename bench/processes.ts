/**
 * 1, 2 and 3 platform processes sharing the work on this machine: each is `api/main.ts` (what
 * `npm start` runs) on the same DATA_DIR — one nats-server, one SQLite event store — and HTTP commands
 * are spread evenly over them. The figures to watch: commands/s as processes are added (on 2 cores
 * they compete for the same CPU, so the point is that a second process loses nothing: every
 * acknowledged command is stored, exactly once), and how long the survivors take to own every shard
 * after one process is SIGKILLed (the leases' TTL is 10 s). The ceiling is the single process.
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { defaultShards } from "../domain/shards.ts"
import { freePort } from "../infra/nats/NatsServer.ts"
import { httpLoad, type HttpRequestSpec } from "./httpLoad.ts"
import { benchDir, BENCH_ADMIN_KEY } from "./platform.ts"
import { round2, throughput } from "./stats.ts"
import type { SummaryRow } from "./summary.ts"

const main = fileURLToPath(new URL("../api/main.ts", import.meta.url))
const commandCount = Number(process.env.BENCH_COMMANDS ?? 6_000)
const entities = 256
const concurrency = 64
const headers = { authorization: `Bearer ${BENCH_ADMIN_KEY}` }

export interface Running {
  readonly child: ChildProcess
  readonly base: string
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` every `everyMs` (50) ms until it holds, for at most `withinMs`; the time it took, in ms. */
export const until = async (check: () => Promise<boolean>, withinMs: number, everyMs = 50) => {
  const started = performance.now()
  while (!(await check().catch(() => false))) {
    if (performance.now() - started > withinMs) throw new Error(`not reached within ${withinMs} ms`)
    await sleep(everyMs)
  }
  return performance.now() - started
}

/**
 * Extra V8 flags for the platform process, for an experiment (e.g. `--max-old-space-size=192`: see the
 * README's memory section); none by default, as `npm start` runs it.
 */
export const platformNodeFlags = (process.env.PLATFORM_NODE_FLAGS ?? "").split(" ").filter(Boolean)

export const start = async (env: Record<string, string>): Promise<Running> => {
  const port = await Effect.runPromise(freePort())
  const child = spawn(process.execPath, ["--no-warnings", ...platformNodeFlags, main], {
    env: { ...process.env, HOST: "127.0.0.1", LOG_LEVEL: "Warn", LOG_FORMAT: "json", ADMIN_API_KEY: BENCH_ADMIN_KEY, ...env, PORT: String(port) },
    stdio: ["ignore", "ignore", "inherit"]
  })
  const base = `http://127.0.0.1:${port}`
  await until(() => fetch(`${base}/ready`).then((r) => r.ok), 120_000)
  return { child, base }
}

export const stop = (running: Running, signal: NodeJS.Signals) =>
  new Promise<void>((resolve) => {
    if (running.child.exitCode !== null || running.child.signalCode !== null) return resolve()
    running.child.once("exit", () => resolve())
    running.child.kill(signal)
  })

interface ClusterView {
  readonly processes: ReadonlyArray<{ readonly id: string; readonly shards: ReadonlyArray<number> }>
}

const cluster = (base: string) => fetch(`${base}/v1/admin/cluster`, { headers }).then((r) => r.json() as Promise<ClusterView>)

/** Every shard owned, by exactly `members` processes (each with some). */
const spread = (view: ClusterView, members: number) =>
  view.processes.length === members && view.processes.every((p) => p.shards.length > 0) &&
  new Set(view.processes.flatMap((p) => p.shards)).size === defaultShards

const patch = (base: number, i: number): HttpRequestSpec => ({
  method: "PATCH",
  path: `/v1/entities/advertiser/${base + (i % entities)}`,
  body: { name: `patched ${i}` }
})

/** One platform of `n` processes: commands/s over all of them, events stored, and (n ≥ 2) takeover after a SIGKILL. */
const run = (n: number) =>
  Effect.scoped(Effect.gen(function*() {
    const dataDir = yield* benchDir(`processes-${n}`)
    const natsPort = yield* freePort()
    const env = { DATA_DIR: dataDir, NATS_PORT: String(natsPort) }
    return yield* Effect.promise(async () => {
      const processes: Array<Running> = []
      try {
        for (let k = 0; k < n; k++) processes.push(await start(env))
        await until(async () => spread(await cluster(processes[0]!.base), n), 60_000)
        const base = 7_000_000
        // create the entities through the first process, then the timed run spread over all
        await httpLoad({
          origin: processes[0]!.base,
          concurrency,
          headers,
          requests: Array.from({ length: entities }, (_, k) => ({ method: "PUT", path: `/v1/entities/advertiser/${base + k}`, body: { name: `created ${k}` } }))
        })
        const share = Math.floor(commandCount / n)
        const started = performance.now()
        const loads = await Promise.all(processes.map((p, k) =>
          httpLoad({ origin: p.base, concurrency: Math.ceil(concurrency / n), headers, requests: Array.from({ length: share }, (_, i) => patch(base, k * share + i)) })))
        const seconds = (performance.now() - started) / 1000
        const latencyMs = loads.flatMap((l) => l.latencyMs)
        const errors = loads.reduce((sum, l) => sum + l.errors, 0)
        const acknowledged = entities + latencyMs.length
        // every acknowledged command made exactly one event (unique names: no no-ops)
        const db = new DatabaseSync(join(dataDir, "events.db"), { readOnly: true })
        const stored = (db.prepare("SELECT count(*) AS n FROM events").get() as { n: number }).n
        db.close()
        let takeoverMs: number | undefined
        if (n >= 2) {
          const killed = performance.now()
          await stop(processes[n - 1]!, "SIGKILL")
          await until(async () => spread(await cluster(processes[0]!.base), n - 1), 60_000)
          takeoverMs = round2(performance.now() - killed)
        }
        return { processes: n, ...throughput(seconds, latencyMs, errors), acknowledged, stored, lost: acknowledged - stored, ...(takeoverMs === undefined ? {} : { takeoverMs }) }
      } finally {
        // the last one to stop also stops the shared nats-server
        for (const p of processes.toReversed()) await stop(p, "SIGTERM")
      }
    })
  }))

export const benchProcesses = async () => {
  const runs = []
  for (const n of [1, 2, 3]) runs.push(await Effect.runPromise(run(n)))
  const single = runs[0]!.perSecond
  const result = { name: "processes", setup: { commands: commandCount, entities, concurrency, shards: defaultShards, spread: "HTTP load split evenly over the processes" }, runs }
  const rows: Array<SummaryRow> = runs.map((r) => ({
    benchmark: `${r.processes} process${r.processes === 1 ? "" : "es"} on one DATA_DIR: commands/s over HTTP`,
    figure: `${r.perSecond}/s (p99 ${r.p99} ms); ${r.acknowledged} acknowledged, ${r.stored} stored${r.takeoverMs === undefined ? "" : `; takeover after SIGKILL ${round2(r.takeoverMs / 1000)} s`}`,
    ceiling: r.processes === 1 ? "—" : `1 process: ${single}/s`,
    ratio: round2(r.perSecond / single),
    target: "nothing lost; takeover < 15 s",
    pass: r.lost === 0 && (r.takeoverMs === undefined || r.takeoverMs < 15_000)
  }))
  return { result, rows }
}

if (import.meta.main) {
  const { result } = await benchProcesses()
  console.log(JSON.stringify(result, null, 2))
}
