/**
 * (b) Commands per second end to end, with p50/p99 latency, at a fixed concurrency:
 * - HTTP: clients in a worker thread PUT/PATCH over keep-alive HTTP to the listening platform;
 * - NATS: the same commands through `CommandBus.send` (bus + actor + store, no HTTP).
 * Ceilings in the same run and at the same concurrency: the cheapest stage alone — raw JetStream
 * publish + ack round trips (the bus floor), a bare Fastify route answering 200 (the HTTP floor), the
 * SQLite adapter's appends (the store floor) — and the stages in series (bench/seriesCeiling.ts: per
 * command one HTTP round trip, one JetStream publish with its ack, one SQLite commit and the relay's
 * two publishes, nothing else), which is the ceiling the target is set against (≥ 0.5×).
 * Commands go to distinct entities and, one in eight, to a few shared ones.
 */
import { join } from "node:path"
import { jetstreamManager, jetstream, StorageType } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import Fastify from "fastify"
import { Context, Effect, Layer } from "effect"
import { HttpServer, NatsAccess } from "../api/platform.ts"
import { CommandBus } from "../domain/CommandBus.ts"
import { advertiser } from "../domain/entities/advertiser.ts"
import { EntityUpdated, type RecordCommand as EntityAction } from "../domain/entities/record.ts"
import type { EntityCommand } from "../domain/entity.ts"
import { makeEntityKind } from "../domain/EntityKind.ts"
import type { EventMetadata } from "../domain/envelope.ts"
import { uuidv7 } from "../domain/uuidv7.ts"
import { makeSqlite } from "../infra/eventstore/sqlite.ts"
import { httpLoad, type HttpLoadResult, type HttpRequestSpec } from "./httpLoad.ts"
import { seriesCeiling } from "./seriesCeiling.ts"
import { benchDir, BENCH_ADMIN_KEY, credentials, layerBenchPlatform } from "./platform.ts"
import { closedLoop, round2, throughput, type Throughput } from "./stats.ts"
import type { SummaryRow } from "./summary.ts"

const records = makeEntityKind(advertiser)

export const concurrency = 64
const commandCount = Number(process.env.BENCH_COMMANDS ?? 6_000)
const distinctEntities = 256
const sharedEntities = 4

const newId = () => uuidv7(Date.now(), crypto.getRandomValues(new Uint8Array(10)))

/** Command i of a run whose entity ids start at `base`: mostly distinct entities, 1 in 8 shared. */
const plan = (base: number, i: number): { readonly id: string; readonly action: EntityAction } => {
  const id = i % 8 === 0 ? String(base + distinctEntities + (i % sharedEntities)) : String(base + (i % distinctEntities))
  const action: EntityAction = i % 2 === 0
    ? { _tag: "Patch", patch: { name: `patched ${i}`, status: i % 4 === 0 ? "active" : "paused" } }
    : { _tag: "Put", fields: { name: `put ${i}`, currency: "USD", domain: `d${i}.example.com` } }
  return { id, action }
}

/** Every entity of a run, created before timing starts. */
const creations = (base: number) =>
  Array.from({ length: distinctEntities + sharedEntities }, (_, k) => ({
    id: String(base + k),
    action: { _tag: "Put", fields: { name: `created ${k}`, currency: "USD" } } as EntityAction
  }))

const toHttp = ({ id, action }: { id: string; action: EntityAction }): HttpRequestSpec =>
  action._tag === "Put"
    ? { method: "PUT", path: `/v1/entities/advertiser/${id}`, body: action.fields }
    : action._tag === "Patch"
    ? { method: "PATCH", path: `/v1/entities/advertiser/${id}`, body: action.patch }
    : { method: "DELETE", path: `/v1/entities/advertiser/${id}` }

const toCommand = ({ id, action }: { id: string; action: EntityAction }): EntityCommand => {
  const commandId = newId()
  return { commandId, correlationId: commandId, entityType: "advertiser", entityId: id, action }
}

const fromHttp = (result: HttpLoadResult): Throughput & { readonly statuses: Record<string, number>; readonly firstError?: string } => ({
  ...throughput(result.seconds, result.latencyMs, result.errors),
  statuses: result.statuses,
  ...(result.firstError === undefined ? {} : { firstError: result.firstError })
})

const headers = { authorization: `Bearer ${BENCH_ADMIN_KEY}` }

/** The platform through HTTP, then through the bus directly, on one running platform. */
const platformRuns = Effect.scoped(Effect.gen(function*() {
  // BENCH_SHARDS: another shard count than the default 64, to see what shards cost
  const context = yield* Layer.build(layerBenchPlatform(process.env.BENCH_SHARDS === undefined ? {} : { SHARDS: process.env.BENCH_SHARDS }))
  const { url } = Context.get(context, HttpServer)
  const access = Context.get(context, NatsAccess)
  const bus = Context.get(context, CommandBus)
  const send = (command: EntityCommand) =>
    Effect.runPromise(bus.send(command)).then((reply) => {
      if (reply._tag !== "Accepted") throw new Error(`${command.entityId}: ${JSON.stringify(reply)}`)
    })

  // HTTP: create the entities (also warms up every stage), then the timed run
  const httpBase = 1_000_000
  yield* Effect.promise(() => httpLoad({ origin: url, concurrency, headers, requests: creations(httpBase).map(toHttp) }))
  const http = yield* Effect.promise(() =>
    httpLoad({ origin: url, concurrency, headers, requests: Array.from({ length: commandCount }, (_, i) => toHttp(plan(httpBase, i))) }))

  // NATS: the same shape of commands on other entities
  const natsBase = 2_000_000
  yield* Effect.promise(() => closedLoop(distinctEntities + sharedEntities, concurrency, (i) => send(toCommand(creations(natsBase)[i]!))))
  const commands = Array.from({ length: commandCount }, (_, i) => toCommand(plan(natsBase, i)))
  const nats = yield* Effect.promise(() => closedLoop(commandCount, concurrency, (i) => send(commands[i]!)))

  // The bus floor on the same nats-server: publish + ack of a command-sized message, nothing else
  const jetStreamFloor = yield* Effect.promise(() => jetStreamRoundTrips(access, commands))
  return {
    http: fromHttp(http),
    nats: {
      ...throughput(nats.seconds, nats.latencyMs, nats.errors),
      ...(nats.firstError === undefined ? {} : { firstError: String(nats.firstError) })
    },
    jetStreamFloor
  }
}))

/** Raw JetStream: publish a message to a file-backed stream and await its ack, `concurrency` at a time. */
const jetStreamRoundTrips = async (nats: NatsAccess["Service"], commands: ReadonlyArray<EntityCommand>) => {
  const nc = await connect({ servers: nats.url, name: "bench-jetstream-floor", ...credentials(nats.platform) })
  try {
    const jsm = await jetstreamManager(nc)
    await jsm.streams.add({ name: "BENCH_FLOOR", subjects: ["benchfloor.>"], storage: StorageType.File, num_replicas: 1 })
    const js = jetstream(nc)
    const encoder = new TextEncoder()
    const payloads = commands.map((c) => encoder.encode(JSON.stringify(c)))
    await closedLoop(500, concurrency, (i) => js.publish(`benchfloor.warm.${i % 64}`, payloads[i % payloads.length]!).then(() => undefined))
    const run = await closedLoop(payloads.length, concurrency, (i) =>
      js.publish(`benchfloor.advertiser.${commands[i]!.entityId}`, payloads[i]!).then(() => undefined))
    return throughput(run.seconds, run.latencyMs, run.errors)
  } finally {
    await nc.close()
  }
}

/** A Fastify route that parses the JSON body and answers 200, under the same load as the platform. */
const fastifyFloor = async (): Promise<Throughput> => {
  const app = Fastify({ logger: false })
  const ok = async () => ({ ok: true })
  app.put("/v1/entities/advertiser/:id", ok)
  app.patch("/v1/entities/advertiser/:id", ok)
  const origin = await app.listen({ port: 0, host: "127.0.0.1" })
  try {
    await httpLoad({ origin, concurrency, headers, requests: creations(0).map(toHttp) })
    const result = await httpLoad({ origin, concurrency, headers, requests: Array.from({ length: commandCount }, (_, i) => toHttp(plan(0, i))) })
    return fromHttp(result)
  } finally {
    await app.close()
  }
}

/** The SQLite adapter alone: `concurrency` appenders, one EntityUpdated event per append, as the actors do. */
const sqliteFloor = Effect.scoped(Effect.gen(function*() {
  const dir = yield* benchDir("commands-sqlite")
  const store = yield* makeSqlite({ path: join(dir, "events.db") })
  const revisions = new Map<string, number>()
  const append = (i: number) => {
    const { id } = plan(3_000_000, i)
    const stream = `advertiser-${id}`
    const commandId = newId()
    const metadata: EventMetadata = { entityType: "advertiser", entityId: id, commandId, correlationId: commandId, causationId: commandId }
    const event = { eventId: newId(), ...records.toEventData(EntityUpdated.make({ changes: { name: `patched ${i}` } })), metadata }
    // appends to one stream are serialised, like an actor's: take the revision, then append at it
    return Effect.gen(function*() {
      const expected = revisions.get(stream) ?? -1
      revisions.set(stream, expected + 1)
      yield* store.appendToStream(stream, [event], expected === -1 ? "no_stream" : expected)
    })
  }
  // one fiber per worker; a stream is only ever written by the worker whose index owns it, so no conflicts
  const owned = (worker: number) => Array.from({ length: commandCount }, (_, i) => i).filter((i) => streamOwner(i) === worker)
  const streamOwner = (i: number) => Number(plan(3_000_000, i).id) % concurrency
  const started = performance.now()
  const latencyMs: Array<number> = []
  yield* Effect.forEach(Array.from({ length: concurrency }, (_, w) => w), (worker) =>
    Effect.forEach(owned(worker), (i) =>
      Effect.gen(function*() {
        const t0 = performance.now()
        yield* append(i)
        latencyMs.push(performance.now() - t0)
      }), { discard: true }), { concurrency: "unbounded", discard: true })
  return throughput((performance.now() - started) / 1000, latencyMs)
}))

export const benchCommands = async () => {
  const platform = await Effect.runPromise(platformRuns)
  const fastify = await fastifyFloor()
  const sqlite = await Effect.runPromise(sqliteFloor)
  const series = await Effect.runPromise(seriesCeiling({ commands: commandCount, entities: distinctEntities, concurrency }))
  const httpCeiling = Math.min(fastify.perSecond, platform.jetStreamFloor.perSecond, sqlite.perSecond)
  const natsCeiling = Math.min(platform.jetStreamFloor.perSecond, sqlite.perSecond)
  const result = {
    name: "commands",
    setup: { concurrency, commands: commandCount, distinctEntities, sharedEntities, sharedShare: "1 in 8", entityType: "advertiser", actions: "PUT and PATCH alternately" },
    http: platform.http,
    nats: platform.nats,
    ceilings: { jetStreamPublishAck: platform.jetStreamFloor, fastifyBare: fastify, sqliteAdapterAppend: sqlite, seriesHttp: series.http, seriesBus: series.bus },
    ratios: {
      httpOverSeries: round2(platform.http.perSecond / series.http.perSecond),
      natsOverSeries: round2(platform.nats.perSecond / series.bus.perSecond),
      httpOverTightestCeiling: round2(platform.http.perSecond / httpCeiling),
      natsOverTightestCeiling: round2(platform.nats.perSecond / natsCeiling),
      httpOverFastify: round2(platform.http.perSecond / fastify.perSecond),
      natsOverJetStream: round2(platform.nats.perSecond / platform.jetStreamFloor.perSecond),
      natsOverSqlite: round2(platform.nats.perSecond / sqlite.perSecond)
    }
  }
  const rows: Array<SummaryRow> = [
    {
      benchmark: "(b) commands/s, HTTP, against the stages in series",
      figure: `${platform.http.perSecond}/s (p50 ${platform.http.p50} ms, p99 ${platform.http.p99} ms)`,
      ceiling: `${series.http.perSecond}/s: HTTP round trip + JetStream publish/ack + SQLite commit + 2 relay publishes, per command`,
      ratio: result.ratios.httpOverSeries,
      target: ">= 0.5",
      pass: result.ratios.httpOverSeries >= 0.5
    },
    {
      benchmark: "(b) commands/s, NATS bus, against the stages in series",
      figure: `${platform.nats.perSecond}/s (p50 ${platform.nats.p50} ms, p99 ${platform.nats.p99} ms)`,
      ceiling: `${series.bus.perSecond}/s: JetStream publish/ack + SQLite commit + 2 relay publishes, per command`,
      ratio: result.ratios.natsOverSeries,
      target: ">= 0.5",
      pass: result.ratios.natsOverSeries >= 0.5
    },
    {
      benchmark: "(b) commands/s, HTTP, against the cheapest stage",
      figure: `${platform.http.perSecond}/s (p50 ${platform.http.p50} ms, p99 ${platform.http.p99} ms)`,
      ceiling: `${httpCeiling}/s = min(Fastify ${fastify.perSecond}, JetStream ${platform.jetStreamFloor.perSecond}, SQLite ${sqlite.perSecond})`,
      ratio: result.ratios.httpOverTightestCeiling,
      target: "none set (report)"
    },
    {
      benchmark: "(b) commands/s, NATS bus, against the cheapest stage",
      figure: `${platform.nats.perSecond}/s (p50 ${platform.nats.p50} ms, p99 ${platform.nats.p99} ms)`,
      ceiling: `${natsCeiling}/s = min(JetStream ${platform.jetStreamFloor.perSecond}, SQLite ${sqlite.perSecond})`,
      ratio: result.ratios.natsOverTightestCeiling,
      target: "none set (report)"
    }
  ]
  return { result, rows }
}

if (import.meta.main) {
  const { result } = await benchCommands()
  console.log(JSON.stringify(result, null, 2))
}
