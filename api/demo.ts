/**
 * `make demo`: starts the platform on its embedded defaults (nats-server from nats.conf, SQLite in
 * ./data/demo — its own folder, wiped first, never DATA_DIR), drives a realistic workload through every capability
 * over real HTTP and NATS (ingestion: api/demoIngest.ts), prints a summary, and keeps serving until interrupted (`--once`: exit).
 */
import { rmSync } from "node:fs"
import { createServer } from "node:net"
import { join, resolve } from "node:path"
import { jetstream } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { ConfigProvider, Effect } from "effect"
import { freePort, stopLeftover } from "../infra/nats/NatsServer.ts"
import { PlatformConfig } from "./config.ts"
import { deliveryWorkload } from "./demoDelivery.ts"
import { eventsWorkload } from "./demoEvents.ts"
import { ingestWorkload } from "./demoIngest.ts"
import { HttpServer, layer, NatsAccess } from "./platform.ts"
import { createPrivately } from "./privateFiles.ts"
import { runMain } from "./runMain.ts"

const once = process.argv.includes("--once")
const ADMIN = process.env.ADMIN_API_KEY ?? "demo-admin-key-0123456"

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer().once("error", () => resolve(false)).listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })
/** The configured port, or a free one when it is taken (so a demo runs beside anything). */
const pickPort = (name: string, fallback: number) =>
  Effect.gen(function*() {
    const wanted = Number(process.env[name] ?? fallback)
    if (yield* Effect.promise(() => portFree(wanted))) return wanted
    const port = yield* freePort()
    yield* Effect.log(`port ${wanted} is taken; ${name}=${port}`)
    return port
  })

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

interface Call { readonly status: number; readonly body: Record<string, unknown>; readonly headers: Headers }

const workload = (baseUrl: string, nats: NatsAccess["Service"]) => Effect.promise(async () => {
  const natsUrl = nats.url
  const latencies = new Map<string, Array<number>>()
  const statuses = new Map<string, number>()
  const call = async (label: string, method: string, path: string, key: string, body?: unknown, headers: Record<string, string> = {}): Promise<Call> => {
    const started = performance.now()
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const text = await response.text()
    const elapsed = performance.now() - started
    latencies.set(label, [...(latencies.get(label) ?? []), elapsed])
    statuses.set(`${method} ${response.status}`, (statuses.get(`${method} ${response.status}`) ?? 0) + 1)
    return { status: response.status, body: text.length > 0 && text.startsWith("{") ? JSON.parse(text) : {}, headers: response.headers }
  }
  const inParallel = async <A>(items: ReadonlyArray<A>, concurrency: number, f: (a: A) => Promise<unknown>) => {
    let next = 0
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < items.length) await f(items[next++]!)
    }))
  }

  // A consumer following HISTORY from the start, as any service would.
  const nc = await connect({ servers: natsUrl, name: "demo-consumer", ...(nats.reader ? { user: nats.reader.user, pass: nats.reader.password } : {}) })
  const history = await (await jetstream(nc).consumers.get("HISTORY")).consume()
  let historySeen = 0
  const following = (async () => { for await (const m of history) { historySeen++; void m } })()

  const service = (await call("admin", "POST", "/v1/admin/keys", ADMIN, { name: "demo service", role: "service" })).body.secret as string
  const auditor = (await call("admin", "POST", "/v1/admin/keys", ADMIN, { name: "demo auditor", role: "auditor" })).body.secret as string

  const range = (n: number, from = 1) => Array.from({ length: n }, (_, i) => i + from)
  const advertisers = range(20, 1000)
  const campaigns = range(100, 2000)
  const strategies = range(250, 3000)
  const started = performance.now()
  await inParallel(advertisers, 16, (id) => call("create", "PUT", `/v1/entities/advertiser/${id}`, service, { name: `Advertiser ${id}`, currency: "EUR", status: "active" }))
  await inParallel(campaigns, 32, (id) =>
    call("create", "PUT", `/v1/entities/campaign/${id}`, service, { advertiserId: String(advertisers[id % advertisers.length]), name: `Campaign ${id}`, budget: 10_000, status: "active" }))
  await inParallel(strategies, 32, (id) =>
    call("create", "PUT", `/v1/entities/strategy/${id}`, service, { campaignId: String(campaigns[id % campaigns.length]), name: `Strategy ${id}`, bidPrice: 1.5, segmentIds: [String(id * 7), "9007199254740993"] }))
  const afterCreate = new Date().toISOString()
  await new Promise((r) => setTimeout(r, 5))
  await inParallel([...strategies, ...strategies], 32, (id) =>
    call("patch", "PATCH", `/v1/entities/strategy/${id}`, service, { bidPrice: 1.5 + (id % 10) / 10 + Math.random() }, { "content-type": "application/merge-patch+json" }))
  await inParallel(campaigns, 32, (id) =>
    call("replace", "PUT", `/v1/entities/campaign/${id}`, service, { advertiserId: String(advertisers[id % advertisers.length]), name: `Campaign ${id} (renamed)`, budget: 20_000, status: "paused" }))
  await inParallel(strategies.slice(0, 50), 16, (id) => call("delete", "DELETE", `/v1/entities/strategy/${id}`, service))
  const writeSeconds = (performance.now() - started) / 1000

  // The guarantees, shown.
  const target = `/v1/entities/strategy/${strategies[100]}`
  const current = await call("read", "GET", target, service)
  const stale = await call("conflict", "PATCH", target, service, { name: "stale" }, { "if-match": `"${Number(current.headers.get("etag")!.replaceAll('"', "")) - 1}"` })
  const idem1 = await call("idempotent", "PATCH", target, service, { name: "once" }, { "idempotency-key": "demo-key-1" })
  const idem2 = await call("idempotent", "PATCH", target, service, { name: "once" }, { "idempotency-key": "demo-key-1" })
  const invalid = await call("invalid", "PUT", "/v1/entities/strategy/1.5", service, { campaignId: "x", name: "", bidPrice: -1, segmentIds: [] })
  const orphan = await call("orphan", "PUT", "/v1/entities/campaign/999999", service, { advertiserId: "424242", name: "orphan" })
  const forbidden = await call("forbidden", "GET", `${target}/history`, service)
  const asOfThen = await call("asOf", "GET", `${target}?asOf=${afterCreate}`, auditor)
  for (const id of strategies.slice(100, 200)) await call("asOf", "GET", `/v1/entities/strategy/${id}?asOf=${afterCreate}`, auditor)
  const audit = await call("history", "GET", `${target}/history`, auditor)
  const global = await call("history", "GET", "/v1/history?limit=1000", auditor)

  // The core of this step, shown: the shards this process owns, the history as a live stream, a
  // scoped key kept to its own partner.
  const cluster = await call("admin", "GET", "/v1/admin/cluster", ADMIN)
  const processes = cluster.body.processes as Array<{ id: string; shards: Array<number> }>
  const streamed = await (async () => {
    const controller = new AbortController()
    const response = await fetch(`${baseUrl}/v1/history/stream?fromPosition=1`, { headers: { authorization: `Bearer ${auditor}` }, signal: controller.signal })
    const reader = response.body!.getReader()
    let text = ""
    while (text.split("\n").length <= 100) {
      const { value, done } = await reader.read()
      if (done) break
      text += new TextDecoder().decode(value)
    }
    controller.abort()
    return { status: response.status, type: response.headers.get("content-type"), events: text.split("\n").length - 1 }
  })()
  const partner = (await call("admin", "POST", "/v1/admin/keys", ADMIN, { name: "demo partner", role: "partner:acme" })).body.secret as string
  const otherTenant = await call("forbidden", "GET", "/v1/entities/strategy", partner)

  // The read model and the HISTORY consumer are eventually consistent: wait for them to catch up.
  // Counted, not the last position: the global order also holds the platform's children indexes, which
  // HISTORY does not carry (waiting for their positions would wait out the deadline).
  const totalEvents = async () => {
    let position = 0
    let count = 0
    for (;;) {
      const page = await call("history", "GET", `/v1/history?fromPosition=${position}&limit=1000`, auditor)
      count += (page.body.events as Array<unknown>).length
      if (page.body.nextPosition === undefined) return count
      position = page.body.nextPosition as number
    }
  }
  const events = await totalEvents()
  const deadline = Date.now() + 30_000
  while (historySeen < events && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  let listed = 0
  let cursor: string | undefined
  do {
    const page = await call("list", "GET", `/v1/entities/strategy?limit=200${cursor ? `&cursor=${cursor}` : ""}`, service)
    listed += (page.body.items as Array<unknown>).length
    cursor = page.body.next as string | undefined
  } while (cursor !== undefined)
  const snapshots = await jetstream(nc).jetstreamManager().then((m) => m.streams.info("SNAPSHOTS"))
  await history.close()
  await following
  await nc.drain()

  const line = (label: string) => {
    const values = latencies.get(label) ?? []
    return `${label.padEnd(11)} ${String(values.length).padStart(5)} requests   p50 ${percentile(values, 50).toFixed(1).padStart(6)} ms   p99 ${percentile(values, 99).toFixed(1).padStart(6)} ms`
  }
  const commands = [...latencies.entries()].filter(([k]) => ["create", "patch", "replace", "delete"].includes(k)).reduce((n, [, v]) => n + v.length, 0)
  console.log(`
Tributary demo — summary
  entities     ${advertisers.length} advertisers, ${campaigns.length} campaigns, ${strategies.length} strategies (50 deleted; ${listed} strategies listed from the read model)
  commands     ${commands} in ${writeSeconds.toFixed(2)} s over HTTP (${(commands / writeSeconds).toFixed(0)}/s at concurrency 16–32)
  event store  ${events} entity events in global order (first page of /v1/history: ${(global.body.events as Array<unknown>).length})
  HISTORY      ${historySeen} messages received by a JetStream consumer following history.>
  SNAPSHOTS    ${snapshots.state.num_subjects} subjects, ${snapshots.state.messages} messages (latest state per entity)
  latency
    ${line("create")}
    ${line("patch")}
    ${line("replace")}
    ${line("delete")}
    ${line("asOf")}
    ${line("history")}
  guarantees
    stale If-Match           → ${stale.status} ${String(stale.body.code)}
    Idempotency-Key replayed → ${idem1.status}/${idem2.status}, revision ${String(idem1.body.revision)} both times
    invalid body and id      → ${invalid.status} naming ${(invalid.body.errors as Array<{ pointer: string }> | undefined)?.map((e) => e.pointer).join(", ")}
    unknown parent           → ${orphan.status} ${String(orphan.body.code)}
    service reading history  → ${forbidden.status} ${String(forbidden.body.code)}
    asOf right after creation→ ${asOfThen.status}, revision ${String(asOfThen.body.revision)} (now ${String(idem2.body.revision)}); ${(audit.body.events as Array<unknown>).length} events in its history
    partner key on entities  → ${otherTenant.status} ${String(otherTenant.body.code)}
  cluster      ${processes.length} process(es): ${processes.map((p) => `${p.id} owns ${p.shards.length} shards`).join("; ")}
  stream       GET /v1/history/stream → ${streamed.status} ${streamed.type}, first ${streamed.events} events read, then closed by the client
  responses    ${[...statuses.entries()].map(([k, v]) => `${k}: ${v}`).join(", ")}

  API docs     ${baseUrl}/docs
  metrics      ${baseUrl}/metrics
  NATS         ${natsUrl} — follow stream HISTORY (history.<type>.<id>) with a JetStream consumer, read SNAPSHOTS (snapshot.<type>.<id>) by message get
               as user ${nats.reader?.user ?? "(NATS_USER)"}${nats.reader ? ` (account READERS: mirrors of both), password in ${process.env.NATS_READER_PASSWORD ? "NATS_READER_PASSWORD" : `./data/demo/nats-reader.password`}` : ""}
  admin key    ${ADMIN}
`)
})

const main = Effect.gen(function*() {
  yield* createPrivately
  const dataDir = "./data/demo"
  // The nats-server outlives a platform that was killed (it is shared, detached): stop one an earlier
  // demo left on this folder before wiping its store.
  yield* stopLeftover(join(dataDir, "nats-server.pid"), resolve(dataDir, "nats"), "10 seconds")
  rmSync(dataDir, { recursive: true, force: true })
  const env = {
    ...process.env,
    DATA_DIR: dataDir,
    ADMIN_API_KEY: ADMIN,
    PORT: String(yield* pickPort("PORT", 8080)),
    FTP_PORT: String(yield* pickPort("FTP_PORT", 2121)),
    SFTP_PORT: String(yield* pickPort("SFTP_PORT", 2222)),
    ...(process.env.NATS_URL ? {} : { NATS_PORT: String(yield* pickPort("NATS_PORT", 4222)) })
  } as Record<string, string>
  const config = yield* PlatformConfig.parse(ConfigProvider.fromEnvRecord(env))
  const platform = layer({ ...config, host: "127.0.0.1" })
  yield* Effect.gen(function*() {
    const { url } = yield* HttpServer
    yield* workload(url, yield* NatsAccess)
    // partners' files over HTTP and SFTP, a real-time stream, segments and one profile explained
    console.log(yield* Effect.promise(() => ingestWorkload({ baseUrl: url, adminKey: ADMIN, sftpPort: Number(env.SFTP_PORT), dir: dataDir })))
    // the ingested segments delivered to two simulated partners, one failing for a while
    console.log(yield* Effect.promise(() => deliveryWorkload({ baseUrl: url, adminKey: ADMIN })))
    // mobile app events: intake, dedupe, sessions, enrichment, aggregates
    const nats = yield* NatsAccess
    console.log(yield* Effect.promise(() => eventsWorkload({
      baseUrl: url, adminKey: ADMIN, natsUrl: nats.url, natsUser: nats.platform, campaigns: Array.from({ length: 10 }, (_, i) => 2000 + i)
    })))
    if (!once) {
      console.log("Serving; Ctrl-C to stop.")
      yield* Effect.never
    }
  }).pipe(Effect.provide(platform))
})

runMain(main)
