/**
 * App events (issue 8, item 8). BENCH_EVENTS distinct events (default 1,000,000) from BENCH_EVENTS ÷ 20
 * devices (50,000), 20 a device, and 10% of them sent again: a third in the same batch, a third some
 * batches later, a third at the end; one device in 20 is a phone that was off for three months (its
 * events' device times are 90 days old). Batches of 1,000 events, 8 in flight.
 *
 * - CEILING: the same batch bodies parsed (JSON.parse) and inserted by a plain loop into SQLite, one
 *   transaction a batch, INSERT OR IGNORE on (device, seq): events/s.
 * - FIGURE: the platform in its own process (`api/main.ts`): from the first POST to every distinct
 *   event counted in the rollups (`GET /v1/apps/{app}/metrics`): events sent (replays included) per second.
 * - FRESHNESS: meanwhile, every ~200 ms a marker event (a custom event of its own name) is POSTed and
 *   the time from its 202 to its aggregate counting it is measured (polled every 250 ms: a query every
 *   50 ms per marker in flight took 6–15% of the platform's CPU), p50 and p99.
 * - DEDUPE STATE: bytes of the dedupe table in devices.db (dbstat) plus the device states in memory
 *   (gauge tributary_device_states_bytes), ÷ devices.
 * - METADATA CACHE: hits ÷ (hits + misses) from /metrics.
 * - RECOUNT: events per minute and platform, devices per hour, custom events and the sum of their
 *   `score`, from the route, each equal to a brute-force count of the distinct events.
 *
 * `node bench/appEvents.ts` alone, or `npm run bench -- appEvents`.
 */
import { readFileSync } from "node:fs"
import { mkdir, mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect } from "effect"
import { freePort } from "../infra/nats/NatsServer.ts"
import { defaultRollupTiers, minuteOf, tierFloors } from "../projections/events/rollupBuckets.ts"
import { BENCH_ADMIN_KEY } from "./platform.ts"
import { cpuSeconds } from "./cpuTime.ts"
import { sleep, start, stop, until } from "./processes.ts"
import { latencies, round2 } from "./stats.ts"
import type { SummaryRow } from "./summary.ts"

const total = Number(process.env.BENCH_EVENTS ?? 1_000_000)
const perDevice = 20
const devices = Math.max(1, Math.floor(total / perDevice))
const batchSize = 1_000
const inFlight = 8
const app = "31337"
const target = 0.3
const admin = { authorization: `Bearer ${BENCH_ADMIN_KEY}`, "content-type": "application/json" }
const platforms = ["ios", "android"]
const countries = ["us", "fr", "de", "br", "jp"]

interface Event {
  readonly deviceId: string
  readonly seq: number
  readonly time: string
  readonly type: string
  readonly name?: string
  readonly props?: Record<string, number>
  readonly dims: { readonly platform: string; readonly country: string; readonly model: string }
}

/** The distinct events, device-interleaved (every device's seq 0, then every device's seq 1, …). */
const generate = (now: number) => {
  const events: Array<Event> = []
  const start = now - 60 * 60_000
  for (let seq = 0; seq < perDevice; seq++) {
    for (let d = 0; d < devices; d++) {
      const late = d % 20 === 7
      const base = late ? start - 90 * 86_400_000 : start
      const time = new Date(base + (d % 3_000) * 1_000 + seq * 30_000).toISOString()
      const type = seq === 0 ? "open" : seq === perDevice - 1 ? "close" : seq % 5 === 2 ? "custom" : seq % 2 === 0 ? "background" : "foreground"
      events.push({
        deviceId: `dev-${d}`, seq, time, type,
        ...(type === "custom" ? { name: "level", props: { score: (d + seq) % 10 } } : {}),
        dims: { platform: platforms[d % 2]!, country: countries[d % 5]!, model: `m${d % 11}` }
      })
    }
  }
  return events
}

/** Batch bodies: the events in order, every 10th sent again — in its batch, 20 batches later, or at the end. */
const batches = (events: ReadonlyArray<Event>) => {
  const out: Array<Array<Event>> = []
  const end: Array<Event> = []
  for (let i = 0; i < events.length; i += batchSize) out.push(events.slice(i, i + batchSize))
  events.forEach((event, i) => {
    if (i % 10 !== 3) return
    const where = Math.floor(i / 10) % 3
    const batch = Math.floor(i / batchSize)
    if (where === 0) out[batch]!.push(event)
    else if (where === 1) out[Math.min(out.length - 1, batch + 20)]!.push(event)
    else end.push(event)
  })
  for (let i = 0; i < end.length; i += batchSize) out.push(end.slice(i, i + batchSize))
  return out.map((batch) => JSON.stringify(batch))
}

/** The ceiling: the same bodies parsed and inserted by a plain loop, one transaction a batch. */
const ceiling = (bodies: ReadonlyArray<string>, path: string) => {
  const db = new DatabaseSync(path)
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE events (device TEXT, seq INTEGER, time TEXT, type TEXT, name TEXT, props TEXT, dims TEXT, PRIMARY KEY (device, seq)) WITHOUT ROWID")
  const insert = db.prepare("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)")
  const started = performance.now()
  let count = 0
  for (const body of bodies) {
    db.exec("BEGIN")
    for (const e of JSON.parse(body) as Array<Event>) {
      insert.run(e.deviceId, e.seq, e.time, e.type, e.name ?? null, e.props === undefined ? null : JSON.stringify(e.props), JSON.stringify(e.dims))
      count++
    }
    db.exec("COMMIT")
  }
  const seconds = (performance.now() - started) / 1000
  db.close()
  return { events: count, seconds: round2(seconds), eventsPerSecond: Math.round(count / seconds) }
}

/** The processes `pid` started (nats-server, which the platform runs itself). */
const childPids = (pid: number) =>
  readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean).map(Number)

const json = async (response: Response) => {
  if (!response.ok) throw new Error(`${response.url} → ${response.status} ${await response.text()}`)
  return response.json() as Promise<Record<string, unknown>>
}

const metric = (text: string, name: string, label = "") =>
  text.split("\n").filter((line) => line.startsWith(name) && line.includes(label)).reduce((sum, line) => sum + Number(line.split(" ").pop()), 0)

type Row = Record<string, string | number | null>
const query = async (base: string, q: string) => ((await json(await fetch(`${base}/v1/apps/${app}/metrics?${q}`, { headers: admin }))).rows as Array<Row>)

/** `from`/`to` of the UTC days the events fall on (each answer covers at most a day of minutes). */
const daysOf = (events: ReadonlyArray<Event>) => [...new Set(events.map((e) => e.time.slice(0, 10)))].sort()

const recount = async (base: string, events: ReadonlyArray<Event>) => {
  const mismatches: Array<string> = []
  for (const day of daysOf(events)) {
    const inDay = events.filter((e) => e.time.startsWith(day))
    const range = `from=${day}T00:00:00Z&to=${new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString()}`
    const expect = (name: string, rows: Array<Row>, keyOf: (r: Row) => string, expected: Map<string, number>) => {
      const got = new Map(rows.map((r) => [keyOf(r), Number(r.value)]))
      for (const [key, value] of expected) if (got.get(key) !== value) mismatches.push(`${name} ${key}: ${got.get(key)} ≠ ${value}`)
      for (const key of got.keys()) if (!expected.has(key)) mismatches.push(`${name} ${key}: unexpected`)
    }
    const count = (keys: ReadonlyArray<readonly [string, number]>) => keys.reduce((m, [k, v]) => m.set(k, (m.get(k) ?? 0) + v), new Map<string, number>())
    const minute = (t: string) => new Date(Math.floor(Date.parse(t) / 60_000) * 60_000).toISOString()
    const hour = (t: string) => `${t.slice(0, 13)}:00:00.000Z`
    // per minute where the rollups keep minutes (the late devices' days are kept per hour)
    const perMinute = minuteOf(`${day}T00:00:00Z`) >= tierFloors(defaultRollupTiers, Date.now()).minutes
    expect("events", await query(base, `measure=events&${range}&granularity=${perMinute ? "minute" : "hour"}&groupBy=platform&${generated}`), (r) => `${r.time} ${r.platform}`,
      count(inDay.map((e) => [`${perMinute ? minute(e.time) : hour(e.time)} ${e.dims.platform}`, 1])))
    const devicesByHour = new Map<string, Set<string>>()
    for (const e of inDay) devicesByHour.set(hour(e.time), (devicesByHour.get(hour(e.time)) ?? new Set()).add(e.deviceId))
    expect("devices", await query(base, `measure=devices&${range}&granularity=hour&${generated}`), (r) => String(r.time), new Map([...devicesByHour].map(([h, s]) => [h, s.size])))
    const custom = inDay.filter((e) => e.type === "custom")
    expect("custom", await query(base, `measure=custom&name=level&${range}&granularity=hour`), (r) => String(r.time), count(custom.map((e) => [hour(e.time), 1])))
    expect("custom sum", await query(base, `measure=custom&name=level&sum=score&${range}&granularity=hour`), (r) => String(r.time),
      count(custom.map((e) => [hour(e.time), e.props!.score!])))
  }
  return { checked: daysOf(events).length, mismatches: mismatches.length, firstMismatches: mismatches.slice(0, 5) }
}

/** The generated events only, not the markers (platform `bench`). */
const generated = platforms.map((p) => `filter=platform:${p}`).join("&")

const eventsCounted = async (base: string, days: ReadonlyArray<string>) => {
  let sum = 0
  for (const day of days) {
    const rows = await query(base, `measure=events&from=${day}T00:00:00Z&to=${new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString()}&granularity=day&${generated}`)
    sum += rows.reduce((n, r) => n + Number(r.value), 0)
  }
  return sum
}

/** Every ~200 ms a marker (a custom event of its own name) POSTed, and the time from its 202 to its aggregate counting it. */
const markers = (base: string, key: string) => {
  const times: Array<number> = []
  const probes: Array<Promise<void>> = []
  let running = true
  let failures = 0
  const probe = async (n: number) => {
    const time = new Date().toISOString()
    const body = JSON.stringify([{ deviceId: `marker-${n}`, seq: 0, time, type: "custom", name: `marker-${n}`, dims: { platform: "bench" } }])
    const posted = await fetch(`${base}/v1/apps/${app}/events`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body })
    const accepted = performance.now()
    if (posted.status !== 202) return void failures++
    const from = new Date(Date.parse(time) - 60_000).toISOString()
    const to = new Date(Date.parse(time) + 120_000).toISOString()
    await until(async () => (await query(base, `measure=custom&name=marker-${n}&from=${from}&to=${to}&granularity=hour`)).length > 0, 600_000, 250)
      .then(() => void times.push(performance.now() - accepted), () => void failures++)
  }
  const loop = (async () => {
    for (let n = 0; running; n++) {
      if (probes.length - times.length - failures < 20) probes.push(probe(n).catch(() => void failures++))
      await sleep(200)
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      await Promise.all(probes)
      return { ...latencies(times), failures }
    }
  }
}

const platformRun = async (dir: string, bodies: ReadonlyArray<string>, events: ReadonlyArray<Event>) => {
  const dataDir = join(dir, "data")
  await mkdir(dataDir)
  const natsPort = await Effect.runPromise(freePort())
  const running = await start({ DATA_DIR: dataDir, NATS_PORT: String(natsPort), FTP_ENABLED: "false", SFTP_ENABLED: "false" })
  try {
    await json(await fetch(`${running.base}/v1/entities/app/${app}`, { method: "PUT", headers: admin, body: JSON.stringify({ name: "Bench app", publisher: "Bench Media", category: "games" }) }))
    const key = ((await json(await fetch(`${running.base}/v1/admin/keys`, { method: "POST", headers: admin, body: JSON.stringify({ name: "bench sdk", role: `app:${app}` }) }))).secret as string)
    const sdk = { authorization: `Bearer ${key}`, "content-type": "application/json" }
    const pid = running.child.pid!
    const nats = childPids(pid)
    const cpuBefore = { platform: cpuSeconds(pid), nats: nats.reduce((s, p) => s + cpuSeconds(p), 0) }
    const started = performance.now()
    const probes = markers(running.base, key)
    let next = 0
    let retries = 0
    await Promise.all(Array.from({ length: inFlight }, async () => {
      for (let i = next++; i < bodies.length; i = next++) {
        for (;;) {
          const response = await fetch(`${running.base}/v1/apps/${app}/events`, { method: "POST", headers: sdk, body: bodies[i]! })
          if (response.status === 202) {
            await response.arrayBuffer()
            break
          }
          if (response.status !== 503 && response.status !== 429) throw new Error(`POST events → ${response.status} ${await response.text()}`)
          retries++
          await sleep(Number(response.headers.get("retry-after") ?? 1) * 1000)
        }
      }
    }))
    const postedSeconds = (performance.now() - started) / 1000
    const days = daysOf(events)
    await until(async () => (await eventsCounted(running.base, days)) >= events.length, 3_600_000, 1_000)
    const seconds = (performance.now() - started) / 1000
    const cpu = { platform: cpuSeconds(pid) - cpuBefore.platform, nats: nats.reduce((s, p) => s + cpuSeconds(p), 0) - cpuBefore.nats }
    const freshness = await probes.stop()
    const metricsText = await (await fetch(`${running.base}/metrics`, { headers: admin })).text()
    const hits = metric(metricsText, "tributary_metadata_cache_hits_total")
    const misses = metric(metricsText, "tributary_metadata_cache_misses_total")
    const memoryBytes = metric(metricsText, "tributary_device_states_bytes")
    // Where each event went, to tell a dedupe miss from a message applied twice when the recount differs.
    const stages = {
      kept: metric(metricsText, "tributary_device_events_total"),
      duplicates: metric(metricsText, "tributary_device_duplicates_total"),
      givenUp: metric(metricsText, "tributary_device_seqs_given_up_total"),
      published: metric(metricsText, "tributary_device_outbox_published_total"),
      rollupEvents: metric(metricsText, "tributary_rollup_messages_total", 'stream="EVENTS_CLEAN"'),
      rollupSessions: metric(metricsText, "tributary_rollup_messages_total", 'stream="SESSIONS"')
    }
    const devicesDb = new DatabaseSync(join(dataDir, "devices.db"), { readOnly: true })
    const diskBytes = Number((devicesDb.prepare("SELECT COALESCE(SUM(pgsize), 0) AS bytes FROM dbstat WHERE name = 'dedupe'").get() as { bytes: number }).bytes)
    devicesDb.close()
    const check = await recount(running.base, events)
    const sent = bodies.reduce((n, b) => n + (JSON.parse(b) as Array<unknown>).length, 0)
    return {
      eventsSent: sent,
      postSeconds: round2(postedSeconds),
      seconds: round2(seconds),
      eventsPerSecond: Math.round(sent / seconds),
      retriesOn503: retries,
      // CPU from the first POST to every event counted: steadier than events/s on a shared machine
      cpu: {
        platformSeconds: round2(cpu.platform),
        platformMicrosPerEvent: round2((cpu.platform * 1e6) / sent),
        natsServerSeconds: round2(cpu.nats),
        natsServerMicrosPerEvent: round2((cpu.nats * 1e6) / sent)
      },
      freshness,
      dedupe: { diskBytes, memoryBytes, devices, bytesPerDevice: round2((diskBytes + memoryBytes) / devices) },
      metadataCache: { hits, misses, hitRate: round2(hits / Math.max(1, hits + misses)) },
      stages,
      recount: check
    }
  } finally {
    await stop(running, "SIGTERM")
  }
}

export const benchAppEvents = async () => {
  const dir = await mkdtemp(join(tmpdir(), "tributary-bench-app-events-"))
  try {
    const events = generate(Date.now())
    const bodies = batches(events)
    const ceilingRun = ceiling(bodies, join(dir, "ceiling.db"))
    const figure = await platformRun(dir, bodies, events)
    const ratio = round2(figure.eventsPerSecond / ceilingRun.eventsPerSecond)
    const result = {
      name: "appEvents",
      setup: { distinctEvents: events.length, devices, eventsPerDevice: perDevice, replays: "10% (a third in the same batch, a third 20 batches later, a third at the end)", lateDevices: "1 in 20, device times 90 days old", batchSize, inFlight },
      ceiling: ceilingRun,
      figure,
      ratio,
      target: `>= ${target}`
    }
    const rows: Array<SummaryRow> = [
      {
        benchmark: `appEvents: ${events.length.toLocaleString("en-US")} events + 10% replays from ${devices.toLocaleString("en-US")} devices, intake → aggregates visible, events/s`,
        figure: `${figure.eventsPerSecond}/s (${figure.seconds} s; platform ${figure.cpu.platformMicrosPerEvent} CPU µs an event, nats-server ${figure.cpu.natsServerMicrosPerEvent})`,
        ceiling: `JSON.parse + plain SQLite inserts ${ceilingRun.eventsPerSecond}/s`,
        ratio,
        target: `>= ${target}`,
        pass: ratio >= target
      },
      { benchmark: "appEvents: 202 → aggregate counts it", figure: `p50 ${figure.freshness.p50} ms, p99 ${figure.freshness.p99} ms (${figure.freshness.count} markers)`, ceiling: "—", ratio: Number.NaN, target: "seconds" },
      { benchmark: "appEvents: dedupe state per device (disk + memory)", figure: `${figure.dedupe.bytesPerDevice} B`, ceiling: "—", ratio: Number.NaN, target: "<= 64 B", pass: figure.dedupe.bytesPerDevice <= 64 },
      { benchmark: "appEvents: metadata cache hit rate", figure: `${figure.metadataCache.hitRate}`, ceiling: "—", ratio: Number.NaN, target: ">= 0.95", pass: figure.metadataCache.hitRate >= 0.95 },
      { benchmark: "appEvents: aggregates equal to a brute-force recount", figure: `${figure.recount.mismatches} mismatches`, ceiling: "—", ratio: Number.NaN, target: "0", pass: figure.recount.mismatches === 0 }
    ]
    return { result, rows }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

if (import.meta.main) {
  const { result, rows } = await benchAppEvents()
  const { writeFileSync } = await import("node:fs")
  writeFileSync(new URL("./results/appEvents.json", import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
  console.log(JSON.stringify(result, null, 2))
  console.log(rows)
  process.exit(0)
}
