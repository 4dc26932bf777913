/** The platform's configuration: environment variables read through Effect Config (all listed in README). */
import { Config, Duration, Effect, Schema, SchemaGetter } from "effect"
import { largestChunkBytes } from "../domain/delivery/Chunk.ts"
import { attemptsKept, largestDeadLetterBytes } from "../domain/delivery/DeadLetter.ts"
import { defaultShards } from "../domain/shards.ts"
import { defaultRollupLimits, defaultRollupTiers, keepMinutes } from "../projections/events/rollupBuckets.ts"
import { isKey } from "../infra/delivery/secretsKey.ts"
import {
  defaultDeliverLaneMaxChunks, defaultDeliverMaxBytes, defaultDeliveryDeadLettersMaxBytes, defaultDeliveryDeadLettersPerDestination, defaultHistoryMaxBytes
} from "../infra/nats/topology.ts"

const intAtLeast = (minimum: number, name: string) =>
  Config.schema(Schema.FiniteFromString.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(minimum)), name)

/** `<role or kind>=<per second>/<burst>`, comma-separated: `service=2000/4000,partner=50/100` */
const RateLimitsByRole = Schema.String.check(
  Schema.isPattern(/^$|^[a-z0-9:_.*>-]+=\d+(\.\d+)?\/\d+(,[a-z0-9:_.*>-]+=\d+(\.\d+)?\/\d+)*$/, {
    description: "<role or kind>=<per second>/<burst>, comma-separated"
  })
).pipe(Schema.decodeTo(Schema.Record(Schema.String, Schema.Struct({ perSecond: Schema.Number, burst: Schema.Number })), {
  decode: SchemaGetter.transform((text: string) =>
    Object.fromEntries(text === "" ? [] : text.split(",").map((entry) => {
      const [role, limit] = entry.split("=") as [string, string]
      const [perSecond, burst] = limit.split("/").map(Number) as [number, number]
      return [role, { perSecond, burst }]
    }))),
  encode: SchemaGetter.transform((limits) => Object.entries(limits).map(([role, l]) => `${role}=${l.perSecond}/${l.burst}`).join(","))
}))

/** `<first>-<last>`: FTP passive ports, e.g. `30000-30019` */
const PortRange = Schema.String.check(
  Schema.isPattern(/^\d{1,5}-\d{1,5}$/, { description: "<first port>-<last port>, e.g. 30000-30019" })
).pipe(Schema.decodeTo(
  Schema.Struct({ min: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65_535 })), max: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65_535 })) })
    .check(Schema.makeFilter((range: { readonly min: number; readonly max: number }) => range.min <= range.max || "the first port is after the last")),
  {
    decode: SchemaGetter.transform((text: string) => {
      const [min, max] = text.split("-").map(Number) as [number, number]
      return { min, max }
    }),
    encode: SchemaGetter.transform((range: { readonly min: number; readonly max: number }) => `${range.min}-${range.max}`)
  }
))

/** `value` is finite and at least `minimum`, or the configuration fails with `message`. */
const atLeast = (value: number, minimum: number, message: string) =>
  Schema.decodeUnknownEffect(Schema.Number.check(Schema.isFinite({ message }), Schema.isGreaterThanOrEqualTo(minimum, { message })))(value).pipe(
    Effect.mapError((error) => new Config.ConfigError(error))
  )

/**
 * `bound` (the env var `name`) holds at least eight of a stream's largest messages (`largest` bytes, as
 * `why` says): between two reads of a stream a process sends at most an eighth of its bound, and never
 * a larger message (infra/nats/streamBytes.ts).
 */
const holdsEight = (name: string, bound: number, largest: number, why: string) =>
  atLeast(bound, 8 * largest, `${name} must be at least ${8 * largest}: ${why}, and a process sends at most an eighth of a stream's bound between two reads of it`)

/** The least bound of INGEST, EVENTS, DELIVER and DLQ: eight of the largest message nats.conf's `max_payload` (8 MB) lets through. */
const leastStreamBytes = 67_108_864

const platformConfig = Config.all({
  /** pretty (for people) or json (one object a line, for log collectors) */
  logFormat: Config.Literals(["pretty", "json"], "LOG_FORMAT").pipe(Config.withDefault("pretty" as const)),
  /** Trace, Debug, Info, Warn, Error */
  logLevel: Config.LogLevel("LOG_LEVEL").pipe(Config.withDefault("Info" as const)),
  /** HTTP port; 0 picks a free one */
  port: Config.schema(Schema.FiniteFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 0, maximum: 65_535 })), "PORT").pipe(
    Config.withDefault(8080)
  ),
  /** HTTP listen address */
  host: Config.String("HOST").pipe(Config.withDefault("0.0.0.0")),
  /** where the embedded stores live: SQLite files, the embedded nats-server's JetStream store */
  dataDir: Config.String("DATA_DIR").pipe(Config.withDefault("./data")),
  /** an existing NATS (JetStream) server or cluster; when absent, nats-server is started from nats.conf */
  natsUrl: Config.option(Config.String("NATS_URL")),
  /** credentials for NATS_URL, where that server requires them */
  natsUser: Config.option(Config.String("NATS_USER")),
  natsPassword: Config.option(Config.Redacted("NATS_PASSWORD")),
  /** the embedded nats-server's `reader` password (for consumers of HISTORY/SNAPSHOTS); generated once into DATA_DIR when unset */
  natsReaderPassword: Config.option(Config.Redacted("NATS_READER_PASSWORD")),
  /** port of the embedded nats-server (127.0.0.1 only) */
  natsPort: Config.Port("NATS_PORT").pipe(Config.withDefault(4222)),
  /** esdb://… or kurrentdb://… selects EventStoreDB/KurrentDB; when absent, SQLite under DATA_DIR */
  eventStoreUrl: Config.option(Config.String("EVENTSTORE_URL")),
  /** the bootstrap admin API key; a short one could be guessed, so it is refused at start (the message never shows it) */
  adminApiKey: Config.option(Config.schema(
    Schema.Redacted(Schema.String.check(Schema.isMinLength(16, { message: "must be at least 16 characters" }))),
    "ADMIN_API_KEY"
  )),
  /** base64 of 32 bytes: the AES-256-GCM key of destinations' secret headers; when unset, generated once into DATA_DIR/delivery-secrets.key */
  deliverySecretsKey: Config.option(Config.schema(
    Schema.Redacted(Schema.String.check(Schema.makeFilter((s: string) => isKey(s) || "must be base64 of 32 bytes (openssl rand -base64 32)"))),
    "DELIVERY_SECRETS_KEY"
  )),
  /** how long HISTORY keeps events on JetStream (the event store keeps them for ever) */
  historyRetention: Config.Duration("HISTORY_RETENTION").pipe(Config.withDefault(Duration.days(30))),
  /** bytes HISTORY keeps at most on JetStream (and its READERS mirror), the oldest going first */
  historyMaxBytes: intAtLeast(1_048_576, "HISTORY_MAX_BYTES").pipe(Config.withDefault(defaultHistoryMaxBytes)),
  /** bytes DELIVER holds at most; beyond, package chunks wait in the outbox (delivery.db) */
  deliverMaxBytes: intAtLeast(leastStreamBytes, "DELIVER_MAX_BYTES").pipe(Config.withDefault(defaultDeliverMaxBytes)),
  /** chunks one destination lane holds on DELIVER at most; beyond, that destination's wait in the outbox */
  deliverLaneMaxChunks: intAtLeast(1, "DELIVER_LANE_MAX_CHUNKS").pipe(Config.withDefault(defaultDeliverLaneMaxChunks)),
  /** dead letters one destination keeps at most; beyond, its lanes wait until some are replayed or discarded */
  deliveryDeadLettersPerDestination: intAtLeast(1, "DELIVERY_DEAD_LETTERS_PER_DESTINATION").pipe(Config.withDefault(defaultDeliveryDeadLettersPerDestination)),
  /** bytes DLQ holds at most; beyond, every lane with a record to dead-letter waits */
  deliveryDeadLettersMaxBytes: intAtLeast(leastStreamBytes, "DELIVERY_DEAD_LETTERS_MAX_BYTES").pipe(Config.withDefault(defaultDeliveryDeadLettersMaxBytes)),
  /** bytes each of EVENTS_CLEAN, SESSIONS, ALERTS and RECEIPTS keeps at most (and each of their READERS mirrors); the oldest go first */
  followMaxBytes: intAtLeast(1_048_576, "FOLLOW_MAX_BYTES").pipe(Config.withDefault(4_294_967_296)),
  /** keep a point-in-time snapshot every N revisions of an entity */
  snapshotEvery: intAtLeast(1, "SNAPSHOT_EVERY").pipe(Config.withDefault(100)),
  /** largest accepted request body, bytes (413 above) */
  bodyLimit: intAtLeast(1, "BODY_LIMIT_BYTES").pipe(Config.withDefault(1_048_576)),
  /** commands in flight in this process before answering 503 + Retry-After */
  maxInFlightCommands: intAtLeast(0, "MAX_INFLIGHT_COMMANDS").pipe(Config.withDefault(2_048)),
  /** of those, what the keys of one partner, app or producer may hold at once (503 + Retry-After beyond, to that tenant only) */
  maxInFlightPerTenant: intAtLeast(1, "MAX_INFLIGHT_PER_TENANT").pipe(Config.withDefault(256)),
  /** reads (entity state, asOf, history pages, lists) worked on at once per process */
  maxConcurrentReads: intAtLeast(1, "MAX_CONCURRENT_READS").pipe(Config.withDefault(16)),
  /** reads waiting for a slot beyond those; more answer 503 + Retry-After */
  readQueue: intAtLeast(0, "READ_QUEUE").pipe(Config.withDefault(64)),
  /** how long a read may wait for a slot before answering 503 + Retry-After */
  readQueueTimeout: Config.Duration("READ_QUEUE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(2))),
  /** a request's headers must arrive within this (408 and closed after) */
  httpHeadersTimeout: Config.Duration("HTTP_HEADERS_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10))),
  /** a whole request, headers and body, must arrive within this (408 and closed after); uploads are bounded by their pace instead (UPLOAD_IDLE_TIMEOUT, UPLOAD_MIN_BYTES_PER_SECOND) */
  httpRequestTimeout: Config.Duration("HTTP_REQUEST_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
  /** open HTTP connections at most per process; more are closed at once (keep it under the file descriptor limit) */
  httpMaxConnections: intAtLeast(1, "HTTP_MAX_CONNECTIONS").pipe(Config.withDefault(8_192)),
  /** JSON bodies nested deeper than this answer 400 */
  maxJsonDepth: intAtLeast(1, "MAX_JSON_DEPTH").pipe(Config.withDefault(64)),
  /** per remote address: failed authentications a second and at once, beyond which it is answered 429 */
  authFailures: Config.all({
    perSecond: Config.schema(Schema.FiniteFromString.check(Schema.isGreaterThan(0)), "AUTH_FAILURES_PER_SECOND").pipe(Config.withDefault(5)),
    burst: intAtLeast(1, "AUTH_FAILURES_BURST").pipe(Config.withDefault(50))
  }),
  /** how long an HTTP command waits for its entity's answer (504 after) */
  commandTimeout: Config.Duration("COMMAND_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10))),
  /** deliveries of a command without an answer before it is moved to the dead letters */
  commandMaxDeliver: intAtLeast(1, "COMMAND_MAX_DELIVER").pipe(Config.withDefault(5)),
  /** how long and how many bytes the DEADLETTERS stream keeps dead letters; the oldest go first */
  deadLetterMaxAge: Config.Duration("DEAD_LETTER_MAX_AGE").pipe(Config.withDefault(Duration.days(30))),
  deadLetterMaxBytes: intAtLeast(1_024, "DEAD_LETTER_MAX_BYTES").pipe(Config.withDefault(1_073_741_824)),
  /** /ready fails when the oldest event not yet in HISTORY is older than this (the relay is stuck) */
  relayMaxLag: Config.Duration("RELAY_MAX_LAG").pipe(Config.withDefault(Duration.seconds(60))),
  /** shards commands are spread over; every process of one platform must use the same number */
  shards: intAtLeast(1, "SHARDS").pipe(Config.withDefault(defaultShards)),
  /** bounded mailbox of each entity actor */
  entityMailboxSize: intAtLeast(1, "ENTITY_MAILBOX_SIZE").pipe(Config.withDefault(64)),
  /** live entity actors kept per process; beyond it the least recently used idle one is passivated */
  entityMaxActors: intAtLeast(1, "ENTITY_MAX_ACTORS").pipe(Config.withDefault(10_000)),
  /** bytes all entity actors of the process may keep between commands (states, command ids); LRU beyond. */
  entityMemoryBytes: intAtLeast(0, "ENTITY_MEMORY_BYTES").pipe(Config.withDefault(33_554_432)),
  /** an entity actor idle this long is passivated */
  entityIdleTimeout: Config.Duration("ENTITY_IDLE_TIMEOUT").pipe(Config.withDefault(Duration.minutes(5))),
  /** largest file one upload may store (HTTP, FTP, SFTP), bytes as received; 413 beyond, nothing kept */
  uploadMaxBytes: intAtLeast(1, "UPLOAD_MAX_BYTES").pipe(Config.withDefault(21_474_836_480)),
  /** an HTTP upload (a streamed body) is closed with 408 when no byte of it arrived for this long while the server waited for one */
  uploadIdleTimeout: Config.Duration("UPLOAD_IDLE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
  /** past its first UPLOAD_IDLE_TIMEOUT of waiting, an HTTP upload that sent fewer bytes a second over the last UPLOAD_IDLE_TIMEOUT of waiting is closed with 408; 0: no minimum */
  uploadMinBytesPerSecond: intAtLeast(0, "UPLOAD_MIN_BYTES_PER_SECOND").pipe(Config.withDefault(16_384)),
  /** files one process receives at once over HTTP; 503 + Retry-After beyond */
  uploadMaxConcurrent: intAtLeast(1, "UPLOAD_MAX_CONCURRENT").pipe(Config.withDefault(32)),
  /** files one partner sends one process at once over HTTP; 503 + Retry-After beyond, to that partner only */
  uploadMaxConcurrentPerPartner: intAtLeast(1, "UPLOAD_MAX_CONCURRENT_PER_PARTNER").pipe(Config.withDefault(4)),
  /** largest body of one real-time POST (/v1/ingest/{partner}/records), bytes; 413 beyond */
  realtimeMaxBytes: intAtLeast(1, "REALTIME_MAX_BYTES").pipe(Config.withDefault(1_048_576)),
  /** free space an upload must leave on DATA_DIR's disk (uploads in `dir`), checked as it is written; below it uploads are refused (507) */
  uploadsMinFreeBytes: intAtLeast(0, "UPLOADS_MIN_FREE_BYTES").pipe(Config.withDefault(1_073_741_824)),
  /** bytes of real-time bodies one process reads at once, one partner at most an eighth (at least one REALTIME_MAX_BYTES); 503 + Retry-After beyond */
  realtimeInflightMaxBytes: intAtLeast(1, "REALTIME_INFLIGHT_MAX_BYTES").pipe(Config.withDefault(33_554_432)),
  /** where uploads wait for their job: `dir` (DATA_DIR/uploads: every process on one machine) or `nats` (the NATS object store: processes on several machines) */
  uploadsStore: Config.Literals(["dir", "nats"], "UPLOADS_STORE").pipe(Config.withDefault("dir" as const)),
  /** what becomes of an upload once its job is done or failed: delete it, or keep it in DATA_DIR/uploads */
  uploadRetention: Config.Literals(["delete", "keep"], "UPLOAD_RETENTION").pipe(Config.withDefault("delete" as const)),
  /** bytes of ingestion work the INGEST stream holds before refusing more (doors answer 503 + Retry-After) */
  ingestMaxBytes: intAtLeast(leastStreamBytes, "INGEST_MAX_BYTES").pipe(Config.withDefault(1_073_741_824)),
  /** bytes of one POST /v1/apps/{app}/events body, after gzip is inflated (a gzip bomb stops here); 413 beyond */
  eventsBodyMaxBytes: intAtLeast(1, "EVENTS_BODY_MAX_BYTES").pipe(Config.withDefault(8_388_608)),
  /** bytes of event bodies (inflated) one process holds at once, over all requests; 503 + Retry-After beyond (at least EVENTS_BODY_MAX_BYTES) */
  eventsInflightMaxBytes: intAtLeast(1, "EVENTS_INFLIGHT_MAX_BYTES").pipe(Config.withDefault(33_554_432)),
  /** how long one events body may take to arrive whole; 408 beyond (a body kept open a byte at a time held its bytes of EVENTS_INFLIGHT_MAX_BYTES) */
  eventsBodyTimeout: Config.Duration("EVENTS_BODY_TIMEOUT").pipe(Config.withDefault(Duration.seconds(60))),
  /** events in one batch at most; 413 beyond */
  eventsMaxPerBatch: intAtLeast(1, "EVENTS_MAX_PER_BATCH").pipe(Config.withDefault(10_000)),
  /** characters of one event (one JSON Lines line) at most; 413 for a longer line, a longer event of an array is rejected */
  eventsMaxLineBytes: intAtLeast(256, "EVENTS_MAX_LINE_BYTES").pipe(Config.withDefault(65_536)),
  /** characters of one EventBatch message on EVENTS: a bigger batch is split (nats.conf's max_payload is 8 MB) */
  eventsMessageMaxBytes: intAtLeast(65_536, "EVENTS_MESSAGE_MAX_BYTES").pipe(Config.withDefault(524_288)),
  /** bytes of app events the EVENTS stream holds before the intake answers 503 + Retry-After */
  eventsMaxBytes: intAtLeast(leastStreamBytes, "EVENTS_MAX_BYTES").pipe(Config.withDefault(1_073_741_824)),
  /** batches of one app not yet processed by its device pipeline (on EVENTS) above which the intake answers 503 + Retry-After */
  eventsMaxPending: intAtLeast(1, "EVENTS_MAX_PENDING").pipe(Config.withDefault(10_000)),
  /** bytes of one app's batches on EVENTS (estimated) above which that app is answered 503 + Retry-After; none: a quarter of EVENTS_MAX_BYTES */
  eventsAppMaxBytes: Config.option(intAtLeast(1_024, "EVENTS_APP_MAX_BYTES")),
  /** metadata (apps, campaigns) kept in each process's cache for enriching app events; least recently used first out */
  metadataCacheCapacity: intAtLeast(1, "METADATA_CACHE_CAPACITY").pipe(Config.withDefault(100_000)),
  /** how long a cached app's or campaign's metadata is kept with no change seen (changes replace it within a second) */
  metadataCacheTtl: Config.Duration("METADATA_CACHE_TTL").pipe(Config.withDefault(Duration.minutes(10))),
  /** what one app may add to the rollups, past which its events count under "(other)" (projections/events/rollupBuckets.ts) */
  rollupLimits: Config.all({
    customNames: intAtLeast(1, "ROLLUP_MAX_CUSTOM_NAMES").pipe(Config.withDefault(defaultRollupLimits.customNames)),
    summedProps: intAtLeast(0, "ROLLUP_MAX_SUMMED_PROPS").pipe(Config.withDefault(defaultRollupLimits.summedProps)),
    newDimSetsPerDay: intAtLeast(1, "ROLLUP_MAX_NEW_DIM_SETS").pipe(Config.withDefault(defaultRollupLimits.newDimSetsPerDay)),
    newDimSetBytesPerDay: intAtLeast(4_096, "ROLLUP_MAX_NEW_DIM_SET_BYTES").pipe(Config.withDefault(defaultRollupLimits.newDimSetBytesPerDay))
  }),
  /** days the rollups keep rows per minute, then per hour; older ones per day (projections/events/rollupBuckets.ts) */
  rollupTiers: Config.all({
    minuteDays: intAtLeast(1, "ROLLUP_MINUTE_DAYS").pipe(Config.withDefault(defaultRollupTiers.minuteDays)),
    hourDays: intAtLeast(1, "ROLLUP_HOUR_DAYS").pipe(Config.withDefault(defaultRollupTiers.hourDays))
  }),
  /**
   * lines of a file translated into one batch of user profile commands (one bus message per shard);
   * with 64 shards a batch of 1,000 lines made messages of ~5 commands each: 10,000 cut the CPU per line by a third
   */
  translateBatchLines: intAtLeast(1, "TRANSLATE_BATCH_LINES").pipe(Config.withDefault(10_000)),
  /** batches of one job sent and not yet answered: the file is read only as fast as profiles commit */
  translateInFlight: intAtLeast(1, "TRANSLATE_IN_FLIGHT").pipe(Config.withDefault(4)),
  /**
   * real-time POSTs of one partner translated and applied at once at most: each waits mostly for its
   * profiles' shards (behind a loading file's batches), so one at a time made them wait for each other
   */
  realtimeConcurrency: intAtLeast(1, "REALTIME_CONCURRENCY").pipe(Config.withDefault(8)),
  /** a running job saves its checkpoint (resumed from after a crash) at least every this many lines */
  translateCheckpointLines: intAtLeast(1, "TRANSLATE_CHECKPOINT_LINES").pipe(Config.withDefault(10_000)),
  /** the device pipeline of app events (README: app events — dedupe and sessions) */
  devicePipeline: Config.all({
    /** a session with no close ends after this long without events (device time; server time when nothing comes) */
    sessionInactivity: Config.Duration("SESSION_INACTIVITY").pipe(Config.withDefault(Duration.minutes(30))),
    /** how often open sessions are checked against SESSION_INACTIVITY */
    sessionCheckInterval: Config.Duration("SESSION_CHECK_INTERVAL").pipe(Config.withDefault(Duration.seconds(30))),
    /**
     * bytes of device states (dedupe, sessions) a process keeps in memory in front of devices.db; LRU
     * beyond. A hot set only (~500 devices): the devices of batches in flight are held anyway, and a
     * miss is one indexed read of devices.db, so memory stays flat however many devices there are
     */
    memoryBytes: intAtLeast(0, "DEVICE_MEMORY_BYTES").pipe(Config.withDefault(262_144)),
    /**
     * SQLite's page cache of each of devices.db's two connections (the device states' loads, and the
     * writer thread's commits): a cache of the file, as the OS's is, not state. A device state not in
     * memory is read through it; at 50,000 devices the 2 MiB default missed, and the loads were a sixth
     * of the main thread (16 MiB: +18% events/s); the writer's upserts walk the same pages
     */
    dbCacheBytes: intAtLeast(0, "DEVICE_DB_CACHE_BYTES").pipe(Config.withDefault(16_777_216)),
    /**
     * EVENTS messages taken as one batch at most. A batch goes through dedupe and its commit without
     * yielding the event loop, and now that a batch is every message waiting (infra/arrivedGroups.ts)
     * a pipeline behind takes full ones: 64 (64,000 events from SDKs sending 1,000 a request) held the
     * loop for seconds under load, so leases, NATS and HTTP waited; 8 keeps a step well under a second.
     */
    batchMessages: intAtLeast(1, "DEVICE_BATCH_MESSAGES").pipe(Config.withDefault(8)),
    /** batches waiting before each stage (dedupe, sessions, enrichment, commit) */
    stageQueue: intAtLeast(1, "DEVICE_STAGE_QUEUE").pipe(Config.withDefault(4)),
    /**
     * an app's pipeline with batches on EVENTS (or outbox rows) and no progress at them for this long
     * gives up and starts again (actors/events/pipelineWatchdog.ts): its lease is renewed whatever it
     * does, so a wait that never ended kept the app from every process (stop 24's outside attack)
     */
    stallTimeout: Config.Duration("DEVICE_STALL_TIMEOUT").pipe(Config.withDefault(Duration.seconds(60)))
  }),
  /** records per delivery package chunk (one DELIVER message) at most (issue 9) */
  deliveryChunkRecords: intAtLeast(1, "DELIVERY_CHUNK_RECORDS").pipe(Config.withDefault(1_000)),
  /** a refresh is refused (503 + Retry-After) while the destination has more records than this waiting on DELIVER */
  deliveryRefreshMaxBacklog: intAtLeast(0, "DELIVERY_REFRESH_MAX_BACKLOG").pipe(Config.withDefault(1_000_000)),
  /** lanes of all destinations together at most: each is a deliverer costing CPU even while idle (a write adding lanes past it: 409) */
  deliveryMaxLanes: intAtLeast(1, "DELIVERY_MAX_LANES").pipe(Config.withDefault(256)),
  /** whether this process delivers to partners' APIs (a DeliveryActor per destination lane it owns); false for an API-only process */
  deliveryEnabled: Config.Boolean("DELIVERY_ENABLED").pipe(Config.withDefault(true)),
  /** how often destinations and lane ownership are looked at: a new destination starts delivering within it */
  deliveryTick: Config.Duration("DELIVERY_TICK").pipe(Config.withDefault(Duration.seconds(1))),
  /** connections at most for requests awaiting partners' answers, all destinations together (default: half the open-file limit) */
  deliveryMaxSockets: Config.option(intAtLeast(1, "DELIVERY_MAX_SOCKETS")),
  /** the file doors (README: FTP and SFTP), served on HOST by one process at a time; each can be turned off */
  fileDoors: Config.all({
    ftpEnabled: Config.Boolean("FTP_ENABLED").pipe(Config.withDefault(true)),
    ftpPort: Config.Port("FTP_PORT").pipe(Config.withDefault(2121)),
    /** passive data connections take a port of this range (open it in the firewall too): as many ports as FILE_DOORS_MAX_SESSIONS, each session holding one at a time */
    ftpPassivePorts: Config.schema(PortRange, "FTP_PASSIVE_PORTS").pipe(Config.withDefault({ min: 30_000, max: 30_063 })),
    /** the address FTP clients are told to connect to for data; default HOST (the client's own address for local clients) */
    ftpPassiveAddress: Config.option(Config.String("FTP_PASSIVE_ADDRESS")),
    sftpEnabled: Config.Boolean("SFTP_ENABLED").pipe(Config.withDefault(true)),
    sftpPort: Config.Port("SFTP_PORT").pipe(Config.withDefault(2222)),
    /** the SFTP server's private host key; default DATA_DIR/sftp-host.key, generated once (ed25519, 0600) */
    sftpHostKeyFile: Config.option(Config.String("SFTP_HOST_KEY_FILE")),
    /** logged-in FTP and SFTP sessions at most, all partners together, and per partner */
    maxSessions: intAtLeast(1, "FILE_DOORS_MAX_SESSIONS").pipe(Config.withDefault(64)),
    maxSessionsPerPartner: intAtLeast(1, "FILE_DOORS_MAX_SESSIONS_PER_PARTNER").pipe(Config.withDefault(4)),
    /** a logged-in FTP or SFTP session without a byte either way for this long is closed (an FTP upload's data counts) */
    idleTimeout: Config.Duration("FILE_DOORS_IDLE_TIMEOUT").pipe(Config.withDefault(Duration.minutes(5))),
    /** per remote address: failed logins a minute and at once, beyond which every login is refused unchecked */
    loginFailuresPerMinute: Config.schema(Schema.FiniteFromString.check(Schema.isGreaterThan(0)), "FILE_DOORS_LOGIN_FAILURES_PER_MINUTE").pipe(Config.withDefault(6)),
    loginFailuresBurst: intAtLeast(1, "FILE_DOORS_LOGIN_FAILURES_BURST").pipe(Config.withDefault(10))
  }),
  /** per API key: requests a second (token bucket refill) and burst (bucket size); 429 + Retry-After beyond */
  rateLimit: Config.all({
    default: Config.all({
      perSecond: Config.schema(Schema.FiniteFromString.check(Schema.isGreaterThan(0)), "RATE_LIMIT_PER_SECOND").pipe(Config.withDefault(1_000)),
      burst: intAtLeast(1, "RATE_LIMIT_BURST").pipe(Config.withDefault(2_000))
    }),
    /** per role or role kind, overriding the two above */
    byRole: Config.schema(RateLimitsByRole, "RATE_LIMIT_BY_ROLE").pipe(Config.withDefault({}))
  })
})

export const PlatformConfig = platformConfig.pipe(Config.mapEffect((config) =>
  Effect.as(
    Effect.all([
      // CMD keeps a command twice this at least (api/platform.ts): zero answered every command 504, and Infinity kept them for good
      atLeast(Duration.toMillis(config.commandTimeout), 1, "COMMAND_TIMEOUT must be a finite duration of at least 1 millisecond"),
      atLeast(config.rollupTiers.hourDays, config.rollupTiers.minuteDays, "ROLLUP_HOUR_DAYS must be at least ROLLUP_MINUTE_DAYS"),
      atLeast(keepMinutes.minuteDays - Math.max(config.rollupTiers.minuteDays, config.rollupTiers.hourDays), 0, `ROLLUP_MINUTE_DAYS and ROLLUP_HOUR_DAYS are at most ${keepMinutes.minuteDays} (before year 0000)`),
      holdsEight("INGEST_MAX_BYTES", config.ingestMaxBytes, 6 * config.realtimeMaxBytes + 65_536,
        "a real-time body may take six times REALTIME_MAX_BYTES on INGEST (JSON writes a control character in six), and 64 KiB more of its message"),
      holdsEight("EVENTS_MAX_BYTES", config.eventsMaxBytes, 3 * config.eventsBodyMaxBytes,
        "a batch's events may take three times EVENTS_BODY_MAX_BYTES on EVENTS (numbers such as 1e20 written out), and are admitted together"),
      holdsEight("DELIVER_MAX_BYTES", config.deliverMaxBytes, largestChunkBytes(config.deliveryChunkRecords),
        "a chunk of DELIVERY_CHUNK_RECORDS records may take that many bytes at their longest"),
      holdsEight("DELIVERY_DEAD_LETTERS_MAX_BYTES", config.deliveryDeadLettersMaxBytes, largestDeadLetterBytes(config.deliveryChunkRecords, attemptsKept),
        "a dead letter of DELIVERY_CHUNK_RECORDS records and its kept attempts may take that many bytes at their longest")
    ]),
    config
  )))
export type PlatformConfig = Config.Success<typeof PlatformConfig>
