/**
 * The app events part of `make demo` (issue 8): two apps, a few hundred devices sending what phones
 * send — opens, closes, backgrounds (short: the same session; long: a new one), ads, custom events —
 * in SDK batches (JSON and gzipped JSON Lines), with 10% of the events sent again: in the same batch,
 * in a later batch, and by devices back after three months with their old device times. It waits for
 * the device pipeline to have every distinct event on EVENTS_CLEAN, then prints aggregates grouped by
 * two dimensions, sessions, the dedupe count and the metadata cache's hit rate.
 */
import { gzipSync } from "node:zlib"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { subjectCount } from "../infra/nats/scanSubject.ts"
import { cleanEventsSubject, sessionsSubject, StreamNames } from "../domain/subjects.ts"

export interface EventsDemoOptions {
  readonly baseUrl: string
  readonly adminKey: string
  readonly natsUrl: string
  readonly natsUser?: { readonly user: string; readonly password: string } | undefined
  /** campaigns that exist (the entity demo made them), for ad events */
  readonly campaigns: ReadonlyArray<number>
}

interface SdkEvent {
  readonly deviceId: string
  readonly seq: number
  readonly time: string
  readonly type: string
  readonly name?: string
  readonly props?: Record<string, string | number>
  readonly campaignId?: string
  readonly creativeId?: string
  readonly dims: Record<string, string>
}

const apps = [
  { id: "7001", fields: { name: "Runner", publisher: "Acme Games", category: "games" } },
  { id: "7002", fields: { name: "Daily Puzzle", publisher: "Beta Studio", category: "puzzle" } }
]
const platforms = [["ios", ["17.4", "18.1"], ["iPhone15,2", "iPhone16,1"]], ["android", ["13", "14"], ["Pixel 8", "SM-S918B"]]] as const
const countries = [["FR", "Orange"], ["FR", "SFR"], ["US", "Verizon"], ["DE", "Telekom"], ["JP", "Docomo"]] as const

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A small deterministic generator, so two demos send the same workload. */
const random = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
  return seed / 2_147_483_648
}

/** One device's life: a few sessions of events, by device time from `start`. */
const deviceEvents = (deviceId: string, start: number, rand: () => number, campaigns: ReadonlyArray<number>): Array<SdkEvent> => {
  const [platform, versions, models] = platforms[Math.floor(rand() * platforms.length)]!
  const [country, carrier] = countries[Math.floor(rand() * countries.length)]!
  const dims = { platform, osVersion: versions[Math.floor(rand() * 2)]!, appVersion: rand() < 0.7 ? "2.3.0" : "2.2.1", model: models[Math.floor(rand() * 2)]!, country, carrier }
  const events: Array<SdkEvent> = []
  let time = start
  const push = (type: string, extra: Partial<SdkEvent> = {}, gapSeconds = 5 + rand() * 40) => {
    time += gapSeconds * 1000
    events.push({ deviceId, seq: events.length, time: new Date(time).toISOString(), type, dims, ...extra })
  }
  const sessions = 1 + Math.floor(rand() * 3)
  for (let s = 0; s < sessions; s++) {
    push("open", {}, 600 + rand() * 3600)
    for (let i = Math.floor(rand() * 4); i > 0; i--) push("custom", { name: "level_up", props: { level: 1 + Math.floor(rand() * 20) } })
    if (rand() < 0.3) push("custom", { name: "purchase", props: { sku: "gems_100", price: 1.99 } })
    if (rand() < 0.6) {
      const campaign = String(campaigns[Math.floor(rand() * Math.min(10, campaigns.length))])
      push("impression", { campaignId: campaign, creativeId: `cr-${campaign}-a` })
      if (rand() < 0.25) push("click", { campaignId: campaign, creativeId: `cr-${campaign}-a` })
    }
    // a background of ≤ 30 s resumes the same session; a longer one ends it
    if (rand() < 0.5) {
      push("background")
      push("foreground", {}, rand() < 0.5 ? 10 + rand() * 15 : 45 + rand() * 300)
    }
    if (rand() < 0.95) push("close")
  }
  return events
}

export const eventsWorkload = async (options: EventsDemoOptions): Promise<string> => {
  const call = async (method: string, path: string, key: string, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${options.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
      ...(body === undefined ? {} : { body: body instanceof Uint8Array || typeof body === "string" ? body : JSON.stringify(body) })
    })
    const text = await response.text()
    return { status: response.status, body: (text.startsWith("{") ? JSON.parse(text) : {}) as Record<string, unknown>, retryAfter: response.headers.get("retry-after") }
  }
  const service = (await call("POST", "/v1/admin/keys", options.adminKey, { name: "demo events service", role: "service" })).body.secret as string
  const sdkKeys = new Map<string, string>()
  for (const app of apps) {
    const put = await call("PUT", `/v1/entities/app/${app.id}`, service, app.fields)
    if (put.status >= 300) throw new Error(`demo: PUT app ${app.id} → ${put.status} ${JSON.stringify(put.body)}`)
    sdkKeys.set(app.id, (await call("POST", "/v1/admin/keys", options.adminKey, { name: `${app.fields.name} SDK`, role: `app:${app.id}` })).body.secret as string)
  }
  const rand = random(42)
  const now = Date.now()
  const threeMonths = 90 * 86_400_000

  // Per app: 150 devices, 10% of them back after three months (device times that old).
  const plan = apps.map((app) => {
    const devices = Array.from({ length: 150 }, (_, d) => {
      const late = d % 10 === 0
      return deviceEvents(`${app.id}-dev-${d}`, (late ? now - threeMonths : now - 6 * 3_600_000) + rand() * 3_600_000, rand, options.campaigns)
    })
    const distinct = devices.flat()
    // SDK batches of ~20 devices' events; 10% of the events sent again: a third in the same batch, a third in a
    // later batch, a third by the late devices (their three-month-old events, again)
    const batches: Array<Array<SdkEvent>> = []
    for (let i = 0; i < devices.length; i += 20) batches.push(devices.slice(i, i + 20).flat())
    const replays = Math.round(distinct.length * 0.1)
    const lateEvents = devices.filter((_, d) => d % 10 === 0).flat()
    for (let r = 0; r < replays; r++) {
      const kind = r % 3
      if (kind === 0) {
        const batch = batches[Math.floor(rand() * batches.length)]!
        batch.push(batch[Math.floor(rand() * batch.length)]!)
      } else if (kind === 1) {
        const from = Math.floor(rand() * (batches.length - 1))
        const source = batches[from]!
        batches[from + 1 + Math.floor(rand() * (batches.length - from - 1))]!.push(source[Math.floor(rand() * source.length)]!)
      } else {
        batches[batches.length - 1]!.push(lateEvents[Math.floor(rand() * lateEvents.length)]!)
      }
    }
    // and one malformed event, to show the per-event answer
    batches[0]!.push({ deviceId: `${app.id}-dev-0`, seq: -1, time: "yesterday", type: "open", dims: {} })
    return { app, distinct: distinct.length, sent: batches.reduce((n, b) => n + b.length, 0), batches, devices: devices.length }
  })

  const started = performance.now()
  let rejected: Array<{ index: number; reason: string }> = []
  let accepted = 0
  let busy = 0
  await Promise.all(plan.map(async ({ app, batches }) => {
    for (const [n, batch] of batches.entries()) {
      const gzipped = n % 2 === 1
      const body = gzipped ? gzipSync(batch.map((e) => JSON.stringify(e)).join("\n")) : JSON.stringify(batch)
      const headers: Record<string, string> = gzipped ? { "content-type": "application/x-ndjson", "content-encoding": "gzip" } : {}
      for (;;) {
        const res = await call("POST", `/v1/apps/${app.id}/events`, sdkKeys.get(app.id)!, body, headers)
        if (res.status === 503) {
          busy++
          await sleep(Number(res.retryAfter ?? "1") * 200)
          continue
        }
        if (res.status !== 202) throw new Error(`demo: POST events → ${res.status} ${JSON.stringify(res.body)}`)
        accepted += res.body.accepted as number
        rejected = [...rejected, ...(res.body.rejected as typeof rejected)]
        break
      }
    }
  }))
  const sendSeconds = (performance.now() - started) / 1000

  const metricsText = async () => (await fetch(`${options.baseUrl}/metrics`)).text()
  const metric = (text: string, name: string) => [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "gm"))].reduce((n, m) => n + Number(m[1]), 0)

  // The device pipeline dedupes and enriches onto EVENTS_CLEAN (in batches): wait until it kept every distinct event.
  const expected = plan.reduce((n, p) => n + p.distinct, 0)
  const deadline = Date.now() + 20_000
  let clean = 0
  while (Date.now() < deadline) {
    clean = metric(await metricsText(), "tributary_device_events_total")
    if (clean >= expected) break
    await sleep(100)
  }
  const pipelineSeconds = (performance.now() - started) / 1000
  const nc = await connect({ servers: options.natsUrl, name: "demo-events", ...(options.natsUser ? { user: options.natsUser.user, pass: options.natsUser.password } : {}) })
  const manager = await jetstreamManager(nc)
  const count = (stream: string, subject: string) => subjectCount(manager, stream, subject)
  const cleanOnStream = async () => (await Promise.all(apps.map((a) => count(StreamNames.eventsClean, cleanEventsSubject(a.id))))).reduce((a, b) => a + b, 0)
  // Kept (counted at dedupe) comes before published (after the commit): wait until the outbox is on the stream.
  let cleanMessages = await cleanOnStream()
  for (let stable = 0; stable < 5 && Date.now() < deadline + 10_000; ) {
    await sleep(100)
    const seen = await cleanOnStream()
    stable = seen === cleanMessages && seen > 0 ? stable + 1 : 0
    cleanMessages = seen
  }
  const sessions = (await Promise.all(apps.map((a) => count(StreamNames.sessions, sessionsSubject(a.id))))).reduce((a, b) => a + b, 0)
  await nc.drain()

  // Aggregates from the rollups (GET /v1/apps/{app}/metrics), summed over the days, grouped by two dimensions.
  const from = new Date(now - threeMonths - 2 * 86_400_000).toISOString().slice(0, 10) + "T00:00:00Z"
  const to = new Date(now + 86_400_000).toISOString().slice(0, 10) + "T00:00:00Z"
  const metrics = async (app: string, query: string, window = `from=${from}&to=${to}`) => {
    const res = await call("GET", `/v1/apps/${app}/metrics?${window}&granularity=day&${query}`, service)
    if (res.status !== 200) throw new Error(`demo: GET metrics → ${res.status} ${JSON.stringify(res.body)}`)
    return res.body.rows as Array<Record<string, unknown>>
  }
  const sum = (rows: ReadonlyArray<Record<string, unknown>>) => rows.reduce((n, row) => n + Number(row.value), 0)
  /** Summed over the days, by two dimensions: the six largest. */
  const grouped = async (app: string, query: string, dims: ReadonlyArray<string>, window?: string) => {
    const totals = new Map<string, number>()
    for (const row of await metrics(app, query, window)) {
      const key = dims.map((d) => String(row[d] ?? "-")).join(" / ")
      totals.set(key, (totals.get(key) ?? 0) + Number(row.value))
    }
    return [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(2)}`).join(" · ")
  }
  const app = apps[0]!.id
  // The rollups follow EVENTS_CLEAN: wait until they count every distinct event of the app.
  const appDistinct = plan[0]!.distinct
  let counted = 0
  for (const until = Date.now() + 20_000; Date.now() < until; await sleep(200)) {
    counted = sum(await metrics(app, "measure=events"))
    if (counted >= appDistinct) break
  }
  const lastDay = `from=${new Date(now - 86_400_000).toISOString().slice(0, 10)}T00:00:00Z&to=${to}`
  const byPlatformCountry = await grouped(app, "measure=events&groupBy=platform,country", ["platform", "country"])
  const adsByAdvertiser = await grouped(app, "measure=events&groupBy=type,advertiserId&filter=type:impression&filter=type:click", ["type", "advertiserId"])
  const sessionsByPublisher = await grouped(app, "measure=sessions&groupBy=publisher,platform", ["publisher", "platform"])
  const devicesByCategory = await grouped(app, "measure=devices&groupBy=category,appVersion", ["category", "appVersion"], lastDay)
  const revenue = await grouped(app, "measure=custom&name=purchase&sum=price&groupBy=country,platform", ["country", "platform"])

  const text = await metricsText()
  const hits = metric(text, "tributary_metadata_cache_hits_total")
  const misses = metric(text, "tributary_metadata_cache_misses_total")
  const sent = plan.reduce((n, p) => n + p.sent, 0)
  return `
  app events
    apps         ${apps.map((a) => `${a.id} ${a.fields.name} (${a.fields.publisher}, ${a.fields.category})`).join(" · ")}
    sent         ${sent} events from ${plan.reduce((n, p) => n + p.devices, 0)} devices in ${plan.reduce((n, p) => n + p.batches.length, 0)} SDK batches (JSON and gzipped JSON Lines) in ${sendSeconds.toFixed(1)} s${busy > 0 ? `, ${busy} answered 503 and sent again` : ""}
                 10% of them sent again (same batch, a later batch, devices back after three months); ${rejected.length} malformed, rejected by index: ${rejected.slice(0, 1).map((r) => `[${r.index}] ${r.reason}`).join("")}
    intake       ${accepted} accepted (202 once on EVENTS)
    dedupe       ${clean} distinct events kept (expected ${expected}): ${accepted - clean} duplicates dropped, ${pipelineSeconds.toFixed(1)} s from the first POST; on EVENTS_CLEAN in ${cleanMessages} CleanBatch messages
    sessions     ${sessions} ended sessions on SESSIONS
    aggregates   GET /v1/apps/${app}/metrics (rollups: ${counted} events counted, ${appDistinct} distinct sent), summed over the days:
    events by platform / country:              ${byPlatformCountry}
    ad events by type / advertiser:            ${adsByAdvertiser}
    sessions by publisher / platform:          ${sessionsByPublisher}
    devices a day by category / app version:   ${devicesByCategory} (the last two days)
    purchase revenue by country / platform:    ${revenue}
    metadata     cache hit rate ${(hits + misses === 0 ? 0 : (100 * hits) / (hits + misses)).toFixed(1)}% (${hits} hits, ${misses} misses)
`
}
