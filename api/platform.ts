/**
 * The platform, wired: NATS (embedded nats-server unless NATS_URL, shared by every process on the
 * same DATA_DIR), the event store (SQLite unless EVENTSTORE_URL), JetStream topology, cluster
 * membership, command bus, entity shards, history relay, entity read model and the HTTP API. Layers
 * release in reverse: HTTP stops accepting and finishes its requests, the shards stop pulling, drain
 * their actors and give their leases back, the relay and projection stop, the process leaves the
 * cluster, NATS drains, and the embedded nats-server stops if no other process still uses it.
 */
import { randomBytes } from "node:crypto"
import { mkdirSync } from "node:fs"
import { join, resolve } from "node:path"
import type { FastifyInstance } from "fastify"
import { Context, Duration, Effect, Layer, Option, Redacted } from "effect"
import * as EntityMemory from "../actors/entity/EntityMemory.ts"
import { Cluster } from "../domain/Cluster.ts"
import { runEntityActors } from "../actors/entity/runEntityActors.ts"
import { runEntityReminders } from "../actors/entity/runEntityReminders.ts"
import { runTranslators } from "../actors/ingest/runTranslators.ts"
import { runDeliveries } from "../actors/delivery/runDeliveries.ts"
import { defaultSocketLimit, DeliverySockets, makeSocketBudget } from "../actors/delivery/SocketBudget.ts"
import * as DeliveryLedgerJetStream from "../infra/delivery/deliveryLedger.ts"
import * as DeliveryQueueJetStream from "../infra/delivery/deliveryQueue.ts"
import * as PartnerHttpUndici from "../infra/delivery/partnerHttp.ts"
import { runDevicePipelines } from "../actors/events/runDevicePipelines.ts"
import * as DeviceStoreSqlite from "../infra/events/deviceStoreSqlite.ts"
import * as EventsQueueJetStream from "../infra/events/eventsQueue.ts"
import * as CleanPublisherJetStream from "../infra/events/cleanPublisher.ts"
import type { Translate } from "../actors/ingest/Translate.ts"
import { OwnedShards } from "../actors/runtime/Shards.ts"
import type { ApiKeys } from "../domain/ApiKeys.ts"
import type { CommandBus } from "../domain/CommandBus.ts"
import type { DeadLetters } from "../domain/DeadLetters.ts"
import { largestChunkBytes } from "../domain/delivery/Chunk.ts"
import { attemptsKept, largestDeadLetterBytes } from "../domain/delivery/DeadLetter.ts"
import type { DeadLetterQueue } from "../domain/delivery/DeadLetterQueue.ts"
import type { DelivererStatuses } from "../domain/delivery/DelivererStatuses.ts"
import type { DeliveryBacklog } from "../domain/delivery/DeliveryBacklog.ts"
import type { IngestJobs } from "../domain/ingest/Job.ts"
import type { Intake } from "../domain/ingest/Intake.ts"
import type { EventIntake } from "../domain/events/EventIntake.ts"
import { Metadata } from "../domain/events/Metadata.ts"
import type { PartnerCredentials } from "../domain/ingest/PartnerCredentials.ts"
import type { DestinationSecrets } from "../domain/delivery/DestinationSecrets.ts"
import * as DeliverySecretsSqlite from "../infra/delivery/secretsSqlite.ts"
import * as DeliveryReceiptsSqlite from "../infra/readmodel/receiptsSqlite.ts"
import type { DeliveryReadModel } from "../projections/delivery/receipts.ts"
import { deliverySecretsKey } from "../infra/delivery/secretsKey.ts"
import { partnerWriteOnly } from "./routes/partnerAccess.ts"
import { destinationWriteOnly } from "./routes/destinationSecrets.ts"
import { makeReservations } from "../infra/nats/reservations.ts"
import { makeSharedTurns } from "../infra/nats/sharedTurns.ts"
import type { AnyDecider } from "../domain/Decider.ts"
import { Deciders, makeRegistry } from "../domain/DeciderRegistry.ts"
import { EventStore } from "../domain/EventStore.ts"
import type { EntityReadModel } from "../projections/EntityReadModel.ts"
import type { SegmentReadModel } from "../projections/ingest/segments.ts"
import * as ApiKeysSqlite from "../infra/apiKeys/sqlite.ts"
import * as DeadLetterQueueJetStream from "../infra/delivery/deadLetterQueue.ts"
import * as DelivererStatusesKv from "../infra/delivery/delivererStatuses.ts"
import * as DeliveryBacklogJetStream from "../infra/delivery/deliveryBacklog.ts"
import { instrumented } from "../infra/eventstore/instrumented.ts"
import { layerSqlite as eventStoreSqlite } from "../infra/eventstore/sqlite.ts"
import { layerJetStream } from "../infra/nats/commandBus.ts"
import * as DeadLettersJetStream from "../infra/nats/deadLetters.ts"
import { Nats } from "../infra/nats/Nats.ts"
import { layerClusterFor } from "../infra/nats/cluster.ts"
import { defaultConfigFile, type NatsCredentials, NatsUsers } from "../infra/nats/NatsServer.ts"
import { useSharedNatsServer } from "../infra/nats/SharedNatsServer.ts"
import { ensureConsumerAccounts } from "../infra/nats/consumerAccounts.ts"
import { checkLargestMessages } from "../infra/nats/largestMessages.ts"
import { ensureTopology } from "../infra/nats/topology.ts"
import * as CredentialsSqlite from "../infra/ingest/credentialsSqlite.ts"
import * as IngestIntake from "../infra/ingest/intake.ts"
import * as EventIntakeJetStream from "../infra/events/eventIntake.ts"
import * as MetadataCache from "../infra/events/metadataCache.ts"
import * as IngestQueueJetStream from "../infra/ingest/ingestQueue.ts"
import * as ReplaceIndexSqlite from "../infra/ingest/replaceIndexSqlite.ts"
import { translateStream } from "../infra/ingest/translateStream.ts"
import * as IngestJobsSqlite from "../infra/ingest/jobsSqlite.ts"
import * as UploadsObjectStore from "../infra/ingest/uploadsObjectStore.ts"
import * as UploadsDir from "../infra/ingest/uploadsDir.ts"
import * as ReadModelSqlite from "../infra/readmodel/sqlite.ts"
import { segmentsProjection } from "../infra/readmodel/segments.ts"
import * as SegmentsSqlite from "../infra/readmodel/segmentsQueries.ts"
import * as RollupsSqlite from "../infra/readmodel/rollups.ts"
import * as RollupsQueries from "../infra/readmodel/rollupsQueries.ts"
import { runRollupConsumers } from "../infra/events/rollupConsumer.ts"
import type { RollupReadModel } from "../projections/events/rollups.ts"
import * as RemindersSqlite from "../infra/reminders/sqlite.ts"
import { type FileDoorsOptions, layerFileDoors, sftpHostKey } from "../infra/ingest/fileDoors.ts"
import { findPartner } from "./routes/ingestPartner.ts"
import { layerRelay } from "../infra/relay.ts"
import * as DeliveryPackagesLayer from "../infra/delivery/packages.ts"
import type { DeliveryPackages } from "../projections/delivery/packages.ts"
import { deliveryPackageRoutes } from "./routes/deliveryPackages.ts"
import { readRelayStatus } from "../infra/relayStatus.ts"
import * as ProjectionRunner from "../projections/ProjectionRunner.ts"
import { buildApp } from "./app.ts"
import { AdminApiKey } from "./auth.ts"
import type { PlatformConfig } from "./config.ts"
import { adminRoutes } from "./routes/admin.ts"
import { appEventsRoutes } from "./routes/appEvents.ts"
import { bootstrapKeyRoutes } from "./routes/bootstrapKey.ts"
import { clusterRoutes } from "./routes/cluster.ts"
import { deliveryRoutes } from "./routes/delivery.ts"
import { entityRoutes } from "./routes/entities.ts"
import { historyRoutes } from "./routes/history.ts"
import { ingestRoutes } from "./routes/ingest.ts"
import { partnerCredentialsRoutes } from "./routes/partnerCredentials.ts"
import { makeAuthFailures } from "./rateLimit.ts"
import { segmentRoutes } from "./routes/segments.ts"
import { readinessChecks } from "./readiness.ts"
import { opsRoutes } from "./routes/ops.ts"
import { profileRoutes } from "./routes/profiles.ts"
import { alertRoutes } from "./routes/alerts.ts"
import { appMetricsRoutes } from "./routes/appMetrics.ts"
import { keptFile } from "../infra/keptFile.ts"

/** The running HTTP server: the Fastify instance (tests use `inject`) and where it listens. */
export class HttpServer extends Context.Service<HttpServer, { readonly app: FastifyInstance; readonly url: string }>()("tributary/HttpServer") {}

/**
 * How to reach the NATS in use: NATS_URL (with NATS_USER/NATS_PASSWORD) or the embedded server, whose
 * `platform` user is this process and whose `reader` user is for consumers of HISTORY and SNAPSHOTS.
 */
export class NatsAccess extends Context.Service<NatsAccess, {
  readonly url: string
  readonly platform: NatsCredentials | undefined
  readonly reader: NatsCredentials | undefined
}>()("tributary/NatsAccess") {}

const secret = () => randomBytes(24).toString("base64url")

/** A password generated once into DATA_DIR (0600), so every process on this DATA_DIR and every restart agree on it. */
const keptSecret = (config: PlatformConfig, name: string) => keptFile(join(config.dataDir, name), secret).trim()

/** The reader's password: configured, or generated once and kept in DATA_DIR so consumers can rely on it. */
const readerPassword = (config: PlatformConfig) =>
  Option.isSome(config.natsReaderPassword) ? Redacted.value(config.natsReaderPassword.value) : keptSecret(config, "nats-reader.password")

const natsLayer = (config: PlatformConfig) => {
  const access = Option.isSome(config.natsUrl)
    ? Layer.succeed(NatsAccess, {
      url: config.natsUrl.value,
      platform: Option.isSome(config.natsUser) && Option.isSome(config.natsPassword)
        ? { user: config.natsUser.value, password: Redacted.value(config.natsPassword.value) }
        : undefined,
      reader: undefined
    })
    : Layer.effect(NatsAccess, Effect.gen(function*() {
      const passwords = { platform: keptSecret(config, "nats-platform.password"), reader: readerPassword(config) }
      // Shared by every process on this DATA_DIR; released after the NATS connection drained, it
      // stops the server only if no other running process uses it.
      // Absolute: a process started from another directory must recognise the server by its store.
      const dataDir = resolve(config.dataDir)
      const server = yield* useSharedNatsServer({
        configFile: defaultConfigFile,
        port: config.natsPort,
        storeDir: join(dataDir, "nats"),
        pidFile: join(dataDir, "nats-server.pid"),
        logFile: join(dataDir, "nats-server.log"),
        usersDir: join(dataDir, "nats-server.users"),
        lockFile: join(dataDir, "nats-server.lock"),
        passwords
      })
      return {
        url: server.url,
        platform: { user: NatsUsers.platform, password: passwords.platform },
        reader: { user: NatsUsers.reader, password: passwords.reader }
      }
    }))
  return Layer.unwrap(Effect.gen(function*() {
    const { url, platform } = yield* NatsAccess
    return Nats.layer({ url, name: `tributary-${process.pid}`, credentials: platform })
  })).pipe(Layer.provideMerge(access))
}

/** What the HTTP routes may use. */
type ApiServices = CommandBus | EventStore | EntityReadModel | ApiKeys | ProjectionRunner.Projections | AdminApiKey | Cluster | DeadLetters
  | Intake | IngestJobs | PartnerCredentials | SegmentReadModel | DestinationSecrets | Metadata | EventIntake | DeliveryPackages | DeliveryReadModel
  | RollupReadModel
  | DeadLetterQueue | DeliveryBacklog | DelivererStatuses

const eventStoreLayer = (config: PlatformConfig) =>
  instrumented(Option.match(config.eventStoreUrl, {
    onNone: () => eventStoreSqlite({ path: join(config.dataDir, "events.db") }),
    // Loaded only when configured: the KurrentDB client and its gRPC stack hold ~10 MB of heap.
    onSome: (connectionString) =>
      Layer.unwrap(Effect.promise(() => import("../infra/eventstore/kurrent.ts")).pipe(Effect.map(({ layerKurrent }) => layerKurrent({ connectionString }))))
  }))

/** The HTTP edge's limits, from the configuration (README: timeouts and limits). */
/** How slowly an upload may come, at every door (HTTP, FTP, SFTP). */
const uploadPace = (config: PlatformConfig) => ({ idleMillis: Duration.toMillis(config.uploadIdleTimeout), minBytesPerSecond: config.uploadMinBytesPerSecond })

const httpLimits = (config: PlatformConfig) => ({
  bodyLimit: config.bodyLimit,
  rateLimit: config.rateLimit,
  authFailures: config.authFailures,
  maxJsonDepth: config.maxJsonDepth,
  maxConnections: config.httpMaxConnections,
  timeouts: { headersMillis: Duration.toMillis(config.httpHeadersTimeout), requestMillis: Duration.toMillis(config.httpRequestTimeout) },
  uploadPace: uploadPace(config),
  admission: {
    commands: { capacity: config.maxInFlightCommands, queue: 0, maxWaitMillis: 0, perTenant: config.maxInFlightPerTenant },
    reads: { capacity: config.maxConcurrentReads, queue: config.readQueue, maxWaitMillis: Duration.toMillis(config.readQueueTimeout) }
  }
})

const httpLayer = (config: PlatformConfig) =>
  Layer.effect(HttpServer, Effect.gen(function*() {
    const context = yield* Effect.context<ApiServices>()
    const nats = yield* Nats
    const store = yield* EventStore
    // turns every process shares, for the bounds that requests landing in several must not pass together
    const turns = yield* makeSharedTurns()
    const reservations = yield* makeReservations
    // the bounds every process enforces together: the lowest any live process was started with (Cluster.strictest)
    const cluster = yield* Cluster
    const maxLanes = cluster.strictest("DELIVERY_MAX_LANES")
    const maxBacklog = cluster.strictest("DELIVERY_REFRESH_MAX_BACKLOG")
    const routes = [
      ...opsRoutes(yield* readinessChecks({ shards: config.shards, relayMaxLag: config.relayMaxLag }), {
        refreshMetrics: readRelayStatus.pipe(Effect.provideService(EventStore, store), Effect.provideService(Nats, nats))
      }),
      ...entityRoutes({ registry: yield* Deciders, writeOnly: { destination: destinationWriteOnly({ maxBacklog, maxLanes, turns, reservations, commandTimeoutMillis: Duration.toMillis(config.commandTimeout) }), partner: partnerWriteOnly(context) } }),
      ...historyRoutes,
      ...segmentRoutes,
      ...adminRoutes,
      ...bootstrapKeyRoutes,
      ...clusterRoutes,
      ...ingestRoutes({ uploadMaxBytes: config.uploadMaxBytes, uploadMaxConcurrent: config.uploadMaxConcurrent, uploadMaxConcurrentPerPartner: config.uploadMaxConcurrentPerPartner, realtimeMaxBytes: config.realtimeMaxBytes, realtimeInflightMaxBytes: config.realtimeInflightMaxBytes, realtimeBodyTimeout: config.httpRequestTimeout }),
      ...partnerCredentialsRoutes,
      ...profileRoutes,
      ...appEventsRoutes({ bodyMaxBytes: config.eventsBodyMaxBytes, inflightMaxBytes: config.eventsInflightMaxBytes, bodyTimeout: config.eventsBodyTimeout, maxEvents: config.eventsMaxPerBatch, maxLineBytes: config.eventsMaxLineBytes, maxJsonDepth: config.maxJsonDepth }),
      ...deliveryPackageRoutes({ maxBacklog, turns }),
      ...appMetricsRoutes,
      ...alertRoutes,
      ...deliveryRoutes
    ]
    const app = yield* Effect.promise(() => buildApp<ApiServices>({ routes, run: Effect.runPromiseExitWith(context), ...httpLimits(config) }))
    const url = yield* Effect.acquireRelease(
      Effect.promise(() => app.listen({ port: config.port, host: config.host })),
      () => Effect.promise(() => app.close())
    )
    return HttpServer.of({ app, url })
  }))

/** The FTP and SFTP doors from the configuration (README: file doors); the SFTP host key is read, or generated once, here. */
const fileDoorsOptions = (config: PlatformConfig): FileDoorsOptions => {
  const doors = config.fileDoors
  return {
    ftp: doors.ftpEnabled
      ? { host: config.host, port: doors.ftpPort, passivePorts: doors.ftpPassivePorts, passiveAddress: Option.getOrUndefined(doors.ftpPassiveAddress) }
      : undefined,
    sftp: doors.sftpEnabled
      ? { host: config.host, port: doors.sftpPort, hostKey: sftpHostKey(Option.getOrElse(doors.sftpHostKeyFile, () => join(config.dataDir, "sftp-host.key"))) }
      : undefined,
    loginFailures: makeAuthFailures({ perSecond: doors.loginFailuresPerMinute / 60, burst: doors.loginFailuresBurst }),
    maxSessions: doors.maxSessions,
    maxSessionsPerPartner: doors.maxSessionsPerPartner,
    maxUploadBytes: config.uploadMaxBytes,
    uploadPace: uploadPace(config),
    loginGrace: { idleMillis: Duration.toMillis(doors.idleTimeout) }
  }
}

/** The HTTP doors' rule at the file doors: a partner paused or deleted takes no new data (its login is refused). */
const doorRefusal = (partner: string) =>
  findPartner(partner).pipe(
    Effect.map((found) => found.paused ? `partner ${partner} is paused: it takes no new data` : undefined),
    Effect.catchTag("NotFound", () => Effect.succeed(`partner ${partner} does not exist`)),
    Effect.catch(() => Effect.succeed("the partner could not be checked; try again"))
  )

export interface PlatformOptions {
  /** the entity types it runs; default the built-in ones (domain/entities/index.ts) */
  readonly deciders?: ReadonlyArray<AnyDecider>
  /** how ingestion jobs' bytes become lines; default infra/ingest/translateStream.ts (tests wrap it) */
  readonly translate?: Translate
}

/** The whole platform for `config`; its HttpServer is listening once the layer is built. */
export const layer = (config: PlatformConfig, options: PlatformOptions = {}) => {
  mkdirSync(config.dataDir, { recursive: true })
  const deciders = options.deciders === undefined ? Layer.empty : Layer.succeed(Deciders, makeRegistry(options.deciders))
  const readModelPath = join(config.dataDir, "readmodel.db")
  const readModel = ReadModelSqlite.layerSqlite({ path: readModelPath, snapshotEvery: config.snapshotEvery, projections: [segmentsProjection()] })
    .pipe(Layer.provide(deciders))
  const stores = Layer.mergeAll(
    natsLayer(config),
    eventStoreLayer(config),
    readModel,
    SegmentsSqlite.layerSqlite({ path: readModelPath }).pipe(Layer.provide(readModel)),
    EntityMemory.layer(config.entityMemoryBytes),
    deciders,
    ApiKeysSqlite.layerSqlite({ path: join(config.dataDir, "keys.db") }),
    RemindersSqlite.layerSqlite({ path: join(config.dataDir, "reminders.db") }),
    IngestJobsSqlite.layerSqlite({ path: join(config.dataDir, "ingest.db") }),
    ReplaceIndexSqlite.layerSqlite({ path: join(config.dataDir, "ingest-members.db") }),
    CredentialsSqlite.layerSqlite({ path: join(config.dataDir, "credentials.db") }),
    Layer.unwrap(Effect.map(deliverySecretsKey(config.deliverySecretsKey, config.dataDir), (key) =>
      DeliverySecretsSqlite.layerSqlite({ path: join(config.dataDir, "delivery-secrets.db"), key }))),
    DeviceStoreSqlite.layerSqlite({ path: join(config.dataDir, "devices.db"), cacheBytes: config.devicePipeline.dbCacheBytes }),
    RollupsSqlite.layerSqlite({ path: join(config.dataDir, "rollups.db"), limits: config.rollupLimits, tiers: config.rollupTiers }),
    RollupsQueries.layerSqlite({ path: join(config.dataDir, "rollups.db"), tiers: config.rollupTiers }),
    Layer.succeed(AdminApiKey, config.adminApiKey)
  )
  const topology = Layer.effectDiscard(Effect.gen(function*() {
    const streams = {
      // past every command's deadline: COMMAND_TIMEOUT, the translators' 2 minutes, the reminders' 5 s
      commandsMaxAge: Duration.max(Duration.hours(1), Duration.times(config.commandTimeout, 2)),
      historyMaxAge: config.historyRetention,
      historyMaxBytes: config.historyMaxBytes,
      deliverMaxBytes: config.deliverMaxBytes,
      deliverLaneMaxChunks: config.deliverLaneMaxChunks,
      deliveryDeadLettersPerDestination: config.deliveryDeadLettersPerDestination,
      deliveryDeadLettersMaxBytes: config.deliveryDeadLettersMaxBytes,
      deadLetterMaxAge: config.deadLetterMaxAge,
      deadLetterMaxBytes: config.deadLetterMaxBytes,
      ingestMaxBytes: config.ingestMaxBytes,
      eventsMaxBytes: config.eventsMaxBytes,
      followMaxBytes: config.followMaxBytes
    }
    yield* ensureTopology(streams)
    yield* checkLargestMessages([
      { setting: "BODY_LIMIT_BYTES", what: "an HTTP command on CMD", bytes: config.bodyLimit + 65_536 },
      { setting: "REALTIME_MAX_BYTES", what: "a real-time body on INGEST (JSON writes a control character in six)", bytes: 6 * config.realtimeMaxBytes + 65_536 },
      { setting: "EVENTS_MESSAGE_MAX_BYTES", what: "an EventBatch on EVENTS (characters, up to three bytes each)", bytes: 3 * config.eventsMessageMaxBytes },
      { setting: "DELIVERY_CHUNK_RECORDS", what: "a chunk on DELIVER", bytes: largestChunkBytes(config.deliveryChunkRecords) },
      { setting: "DELIVERY_CHUNK_RECORDS", what: "a dead letter on DLQ", bytes: largestDeadLetterBytes(config.deliveryChunkRecords, attemptsKept) }
    ])
    // The embedded server's consumer accounts are ours to fill; with NATS_URL they are the operator's.
    // Their mirrors take the streams' limits.
    const { url, platform } = yield* NatsAccess
    if (Option.isNone(config.natsUrl) && platform !== undefined) {
      yield* ensureConsumerAccounts({ url, password: platform.password, topology: streams })
    }
  }))
  const bus = Layer.mergeAll(
    layerJetStream({ shards: config.shards, maxInFlight: config.maxInFlightCommands, defaultTimeout: config.commandTimeout, maxDeliver: config.commandMaxDeliver }),
    layerClusterFor(config.shards, { DELIVERY_MAX_LANES: config.deliveryMaxLanes, DELIVERY_REFRESH_MAX_BACKLOG: config.deliveryRefreshMaxBacklog }),
    DeadLettersJetStream.layerJetStream,
    IngestIntake.layer,
    IngestQueueJetStream.layerJetStream(),
    MetadataCache.layer({ capacity: config.metadataCacheCapacity, timeToLive: config.metadataCacheTtl }),
    EventIntakeJetStream.layer({
      messageMaxBytes: config.eventsMessageMaxBytes,
      maxPending: config.eventsMaxPending,
      appMaxBytes: Option.getOrElse(config.eventsAppMaxBytes, () => Math.floor(config.eventsMaxBytes / 4))
    }),
    EventsQueueJetStream.layerJetStream(),
    CleanPublisherJetStream.layerJetStream,
    DeadLetterQueueJetStream.layerJetStream,
    DeliveryBacklogJetStream.layerJetStream,
    DelivererStatusesKv.layerKv
  )
  // Where uploads wait for their job: DATA_DIR (one machine) or the NATS object store (several).
  const uploads = config.uploadsStore === "nats" ? UploadsObjectStore.layerObjectStore() : UploadsDir.layerDir({ dir: join(config.dataDir, "uploads"), minFreeBytes: config.uploadsMinFreeBytes })
  const workers = Layer.mergeAll(
    layerRelay({}),
    // Delivery packages: delivery.db in every process, the projection and the publisher to DELIVER in one.
    DeliveryPackagesLayer.layer({ path: join(config.dataDir, "delivery.db"), chunkRecords: config.deliveryChunkRecords, maxBacklog: config.deliveryRefreshMaxBacklog }),
    // FTP and SFTP, in the one process holding their lease.
    Layer.unwrap(Effect.map(Effect.context<EventStore | EntityReadModel>(), (context) =>
      layerFileDoors({ ...fileDoorsOptions(config), partnerRefusal: (partner) => Effect.provide(doorRefusal(partner), context) }))),
    ProjectionRunner.layer,
    // the receipts' read model, for the profile explain view
    DeliveryReceiptsSqlite.layerSqlite({ path: join(config.dataDir, "delivery-receipts.db") }),
    // Built once this process took the free shards it should own: HTTP starts after that.
    Layer.effect(OwnedShards, runEntityActors({
      mailboxCapacity: config.entityMailboxSize,
      idleTimeout: config.entityIdleTimeout,
      maxActors: config.entityMaxActors
    }))
  )
  // App-event rollups from EVENTS_CLEAN and SESSIONS, in one process at a time (lease job.rollups).
  const rollups = Layer.effectDiscard(Effect.forkScoped(runRollupConsumers()))
  // Due reminders of the owned shards, fired as Wake commands.
  const reminders = Layer.effectDiscard(Effect.forkScoped(runEntityReminders))
  // A translator per partner (one process at a time each), running the partners' ingestion jobs.
  const translators = Layer.effectDiscard(runTranslators({
    translate: options.translate ?? translateStream,
    batchLines: config.translateBatchLines,
    inFlight: config.translateInFlight,
    realtimeConcurrency: config.realtimeConcurrency,
    realtimeBudget: config.realtimeMaxBytes,
    checkpointLines: config.translateCheckpointLines,
    commandTimeout: "2 minutes",
    deleteUploads: config.uploadRetention === "delete"
  }))
  // A device pipeline per app (one process at a time each): EVENTS → dedupe → sessions → enrichment → EVENTS_CLEAN, SESSIONS.
  // Enriched through the process's metadata cache (infra/events/metadataCache.ts).
  const devicePipelines = Layer.effectDiscard(Effect.flatMap(Metadata, (metadata) => runDevicePipelines({
    inactivity: config.devicePipeline.sessionInactivity,
    sessionCheck: config.devicePipeline.sessionCheckInterval,
    batchMessages: config.devicePipeline.batchMessages,
    stageQueue: config.devicePipeline.stageQueue,
    stallAfter: config.devicePipeline.stallTimeout,
    memoryBytes: config.devicePipeline.memoryBytes,
    metadata
  })))
  // A deliverer per destination lane (one process at a time each), sending chunks to partners' APIs.
  const deliveries = config.deliveryEnabled
    ? Layer.effectDiscard(runDeliveries({ tick: config.deliveryTick })).pipe(
      Layer.provide(Layer.mergeAll(
        DeliveryQueueJetStream.layerJetStream(),
        DeliveryLedgerJetStream.layerJetStream,
        PartnerHttpUndici.layerUndici,
        Layer.succeed(DeliverySockets, makeSocketBudget(Option.getOrElse(config.deliveryMaxSockets, defaultSocketLimit)))
      ))
    )
    : Layer.empty
  return httpLayer(config).pipe(
    Layer.provideMerge(deliveries),
    Layer.provideMerge(devicePipelines),
    Layer.provideMerge(translators),
    Layer.provideMerge(rollups),
    Layer.provideMerge(reminders),
    Layer.provideMerge(workers),
    Layer.provideMerge(bus),
    Layer.provideMerge(uploads),
    Layer.provideMerge(topology),
    Layer.provideMerge(stores)
  )
}
