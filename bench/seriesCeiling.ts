/**
 * The series ceiling of (b): what one command costs when its stages run one after the other with
 * nothing of the platform around them — per command, one HTTP round trip (HTTP variant only), one
 * JetStream publish awaiting its ack, one durable SQLite commit through the adapter, and the relay's
 * two publishes (HISTORY and SNAPSHOTS), awaited. No consumer, no actor, no decoding, no reply
 * subject: the platform can approach this figure, not pass it. Run at the same concurrency as the
 * platform, on the same machine, each entity's commands one at a time as an actor would.
 */
import { join } from "node:path"
import { jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import type { NatsConnection } from "@nats-io/transport-node"
import Fastify from "fastify"
import { Effect } from "effect"
import type { EventStore } from "../domain/EventStore.ts"
import { uuidv7 } from "../domain/uuidv7.ts"
import { makeSqlite } from "../infra/eventstore/sqlite.ts"
import { defaultConfigFile, freePort, startNatsServer } from "../infra/nats/NatsServer.ts"
import { httpLoad } from "./httpLoad.ts"
import { benchDir } from "./platform.ts"
import { closedLoop, throughput, type Throughput } from "./stats.ts"

const newId = () => uuidv7(Date.now(), crypto.getRandomValues(new Uint8Array(10)))
const encoder = new TextEncoder()

interface Stages {
  /** one command through every stage but HTTP */
  readonly command: (entity: string, payload: unknown) => Promise<void>
}

/** The bus, store and relay stages for one command, entity by entity in order (like an actor). */
const makeStages = (nc: NatsConnection, store: EventStore["Service"]): Stages => {
  const js = jetstream(nc)
  const revisions = new Map<string, number>()
  const tails = new Map<string, Promise<void>>()
  const once = async (entity: string, payload: unknown) => {
    const body = encoder.encode(JSON.stringify(payload))
    await js.publish(`series.cmd.${entity}`, body)
    const expected = revisions.get(entity) ?? -1
    const commandId = newId()
    const metadata = { entityType: "advertiser", entityId: entity, commandId, correlationId: commandId, causationId: commandId }
    const appended = await Effect.runPromise(store.appendToStream(`advertiser-${entity}`, [{
      eventId: newId(),
      type: "EntityUpdated",
      data: { changes: payload as never },
      metadata
    }], expected === -1 ? "no_stream" : expected))
    revisions.set(entity, appended.nextRevision)
    await Promise.all([
      js.publish(`series.history.${entity}`, body, { msgID: commandId }),
      js.publish(`series.snapshot.${entity}`, body)
    ])
  }
  return {
    // one entity's commands run one at a time, in order; different entities in parallel
    command: (entity, payload) => {
      const run = (tails.get(entity) ?? Promise.resolve()).then(() => once(entity, payload))
      tails.set(entity, run.catch(() => undefined))
      return run
    }
  }
}

export interface SeriesCeiling {
  readonly bus: Throughput
  readonly http: Throughput
}

/**
 * Both series ceilings, on a nats-server and SQLite file of their own: `commands` commands over
 * `entities` entities at `concurrency`.
 */
export const seriesCeiling = (options: { readonly commands: number; readonly entities: number; readonly concurrency: number }) =>
  Effect.scoped(Effect.gen(function*() {
    const dir = yield* benchDir("series")
    const password = newId()
    const port = yield* freePort()
    const server = yield* startNatsServer({
      configFile: defaultConfigFile,
      port,
      storeDir: join(dir, "nats"),
      passwords: { platform: password, reader: newId() }
    })
    const store = yield* makeSqlite({ path: join(dir, "events.db") })
    const nc = yield* Effect.acquireRelease(
      Effect.promise(() => connect({ servers: server.url, user: "platform", pass: password, noAsyncTraces: true })),
      (nc) => Effect.promise(() => nc.close())
    )
    yield* Effect.promise(async () => {
      const jsm = await jetstreamManager(nc)
      await jsm.streams.add({ name: "SERIES", subjects: ["series.>"], storage: StorageType.File, num_replicas: 1 })
    })
    const stages = makeStages(nc, store)
    const entityOf = (base: number, i: number) => String(base + (i % options.entities))

    // the bus variant: warm up (creates the streams), then the timed run
    yield* Effect.promise(() => closedLoop(options.entities, options.concurrency, (i) => stages.command(entityOf(1_000, i), { name: `warm ${i}` })))
    const bus = yield* Effect.promise(() =>
      closedLoop(options.commands, options.concurrency, (i) => stages.command(entityOf(1_000, i), { name: `bus ${i}` })))

    // the HTTP variant: a bare Fastify route runs the same stages before answering
    const app = Fastify({ logger: false })
    app.patch<{ Params: { id: string }; Body: unknown }>("/v1/entities/advertiser/:id", async (request) => {
      await stages.command(request.params.id, request.body)
      return { ok: true }
    })
    const origin = yield* Effect.acquireRelease(
      Effect.promise(() => app.listen({ port: 0, host: "127.0.0.1" })),
      () => Effect.promise(() => app.close())
    )
    const request = (i: number) => ({ method: "PATCH", path: `/v1/entities/advertiser/${entityOf(100_000, i)}`, body: { name: `http ${i}` } })
    yield* Effect.promise(() => httpLoad({ origin, concurrency: options.concurrency, headers: {}, requests: Array.from({ length: options.entities }, (_, i) => request(i)) }))
    const http = yield* Effect.promise(() =>
      httpLoad({ origin, concurrency: options.concurrency, headers: {}, requests: Array.from({ length: options.commands }, (_, i) => request(i)) }))
    return {
      bus: throughput(bus.seconds, bus.latencyMs, bus.errors),
      http: throughput(http.seconds, http.latencyMs, http.errors)
    } satisfies SeriesCeiling
  }))

if (import.meta.main) {
  console.log(JSON.stringify(await Effect.runPromise(seriesCeiling({ commands: 6_000, entities: 256, concurrency: 64 })), null, 2))
}
