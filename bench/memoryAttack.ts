/**
 * The memory attack of issue 6, replayed on a real `npm start` process: STRATEGIES strategies with
 * SEGMENTS segment ids each, PUT over HTTP, then idle. Prints the process's RSS (VmRSS) before, at
 * its peak and once the relay and the projection have caught up and it stayed idle for a while, so
 * a budget that does not hold (or memory kept for nothing) shows as RSS that stays up.
 *
 *   node --experimental-strip-types bench/memoryAttack.ts
 *   STRATEGIES=802 SEGMENTS=10000 ENTITY_MEMORY_BYTES=268435456 IDLE_SECONDS=60 …
 */
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { freePort } from "../infra/nats/NatsServer.ts"

const main = fileURLToPath(new URL("../api/main.ts", import.meta.url))
const strategies = Number(process.env.STRATEGIES ?? 802)
const segments = Number(process.env.SEGMENTS ?? 10_000)
const idleSeconds = Number(process.env.IDLE_SECONDS ?? 60)
const concurrency = Number(process.env.CONCURRENCY ?? 8)
const key = "memory-attack-admin-key"
const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" }

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** VmRSS of `pid`, in MB (0 once it is gone). */
const rssMb = (pid: number) => {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0)
    return Math.round(kb / 1024)
  } catch {
    return 0
  }
}
const metric = async (base: string, name: string) => {
  const text = await fetch(`${base}/metrics`).then((r) => r.text())
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? NaN)
}
const put = async (base: string, path: string, body: unknown) => {
  for (;;) {
    const r = await fetch(`${base}${path}`, { method: "PUT", headers, body: JSON.stringify(body) })
    if (r.status === 200 || r.status === 201) return void (await r.arrayBuffer())
    const text = await r.text()
    if (r.status !== 503 && r.status !== 429 && r.status !== 504) throw new Error(`${path}: ${r.status} ${text}`)
    await sleep(200)
  }
}
/** 19-digit ids, as an ad server's segment ids look. */
const segmentIds = (seed: number) => Array.from({ length: segments }, (_, i) => String(1_000_000_000_000_000_000n + BigInt(seed) * 1_000_000n + BigInt(i)))

const run = async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "tributary-bench-memory-"))
  const port = await Effect.runPromise(freePort())
  const natsPort = await Effect.runPromise(freePort())
  const child = spawn(process.execPath, ["--no-warnings", ...(process.env.NODE_FLAGS?.split(" ").filter(Boolean) ?? []), main], {
    env: { ...process.env, HOST: "127.0.0.1", LOG_LEVEL: "Warn", LOG_FORMAT: "json", ADMIN_API_KEY: key, DATA_DIR: dataDir, NATS_PORT: String(natsPort), PORT: String(port) },
    stdio: ["ignore", process.env.CHILD_STDOUT === undefined ? "ignore" : "inherit", "inherit"]
  })
  const base = `http://127.0.0.1:${port}`
  try {
    while (!(await fetch(`${base}/ready`).then((r) => r.ok, () => false))) await sleep(200)
    await put(base, "/v1/entities/advertiser/1", { name: "attacker" })
    await put(base, "/v1/entities/campaign/1", { name: "attack", advertiserId: "1" })
    await sleep(5_000)
    const before = rssMb(child.pid!)
    let peak = before
    const sampler = setInterval(() => void (peak = Math.max(peak, rssMb(child.pid!))), 200)
    const started = performance.now()
    let next = 0
    await Promise.all(Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < strategies; i = next++) {
        await put(base, `/v1/entities/strategy/${i + 1}`, { campaignId: "1", name: `s${i}`, bidPrice: 1.5, segmentIds: segmentIds(i) })
      }
    }))
    const loaded = (performance.now() - started) / 1000
    const events = strategies + 2
    while ((await metric(base, "tributary_relay_events_total")) < events || (await metric(base, "tributary_projection_lag_events")) > 0) await sleep(500)
    const settledAt = rssMb(child.pid!)
    await sleep(idleSeconds * 1_000)
    clearInterval(sampler)
    const after = rssMb(child.pid!)
    const memory = await metric(base, "tributary_entity_memory_bytes")
    console.log(JSON.stringify({
      strategies, segments, loadSeconds: Math.round(loaded), rssMb: { before, peak, settled: settledAt, [`after${idleSeconds}sIdle`]: after },
      entityMemoryMb: Math.round(memory / 2 ** 20), budget: process.env.ENTITY_MEMORY_BYTES ?? "default"
    }))
  } finally {
    child.kill("SIGTERM")
    await new Promise((resolve) => child.once("exit", resolve))
    await rm(dataDir, { recursive: true, force: true })
  }
}

await run()
