/**
 * The JetStream streams Tributary needs, declared once and applied idempotently at start-up:
 * creating what is missing and updating what exists, so every process can call it safely.
 */
import { DiscardPolicy, JetStreamApiCodes, RetentionPolicy, StorageType } from "@nats-io/jetstream"
import type { StreamConfig } from "@nats-io/jetstream"
import { nanos } from "@nats-io/transport-node"
import { Duration, Effect } from "effect"
import {
  allAlerts, allCheckpoints, allCleanEvents, allCommands, allDeadLetters, allDeliver, allDeliveryDeadLetters, allEvents, allHistory,
  allIngest, allReceipts, allSessions, allSnapshots, StreamNames
} from "../../domain/subjects.ts"
import { Nats, NatsError, tryNats } from "./Nats.ts"
import { isApiError } from "./freshConsumer.ts"
import { backstopBytes } from "./streamBytes.ts"

export interface TopologyOptions {
  /** how long HISTORY keeps events; default 30 days (auditors replay from the event store beyond it) */
  readonly historyMaxAge?: Duration.Input
  /**
   * bytes HISTORY keeps at most beside its age, the oldest going first; default 8 GiB. Its age alone
   * did not bound it: a 1 GB partner file makes ~25 GB of history, twice with the READERS mirror,
   * and once the account's JetStream is full every JetStream write fails.
   */
  readonly historyMaxBytes?: number
  /**
   * how long CMD keeps a command nobody took; default 1 hour. Every command carries a deadline (its
   * sender's timeout) past which its entity answers it Expired rather than apply it, so one older than
   * every deadline is of no use. Without it, while no shard drained CMD (its event store failing), each
   * sender that timed out left its command behind, and CMD grew by all of them.
   */
  readonly commandsMaxAge?: Duration.Input
  /** how long JetStream remembers a `Nats-Msg-Id` to drop a re-publish; default 2 minutes */
  readonly duplicateWindow?: Duration.Input
  /** how long / how many bytes DEADLETTERS keeps dead letters (the oldest go first); default 30 days, 1 GiB */
  readonly deadLetterMaxAge?: Duration.Input
  readonly deadLetterMaxBytes?: number
  /** bytes INGEST holds at most (work not yet translated); beyond, new messages are refused; default 1 GiB */
  readonly ingestMaxBytes?: number
  /** bytes EVENTS holds at most (app events not yet deduplicated); beyond, the intake answers 503; default 1 GiB */
  readonly eventsMaxBytes?: number
  /** how long EVENTS_CLEAN, SESSIONS, ALERTS and RECEIPTS keep what consumers follow; default 7 days */
  readonly followMaxAge?: Duration.Input
  /**
   * bytes each of them keeps at most, the oldest going first; default 4 GiB. Their age alone did not
   * bound them: at the device pipeline's pace EVENTS_CLEAN fills the account's 64 GB in hours, and
   * after that every JetStream write fails (found by an outside attack: one SDK key wrote 240 MB of
   * them in 13 s from 0.73 MB of gzipped events).
   */
  readonly followMaxBytes?: number
  /**
   * bytes DELIVER holds at most (chunks not yet delivered); beyond, new chunks wait in the packages'
   * outbox on disk (infra/delivery/outboxPublisher.ts); default 2 GiB
   */
  readonly deliverMaxBytes?: number
  /**
   * chunks one destination lane (`deliver.<destination>.<lane>`) holds on DELIVER at most; beyond,
   * that destination's next chunks wait in the outbox while the others' go on; default 10,000
   */
  readonly deliverLaneMaxChunks?: number
  /**
   * dead letters one destination keeps on DLQ at most, and bytes DLQ holds at most; beyond, a deliverer
   * with a record to dead-letter waits (its lane stops sending) until some are replayed or discarded;
   * default 1,000,000 and 2 GiB
   */
  readonly deliveryDeadLettersPerDestination?: number
  readonly deliveryDeadLettersMaxBytes?: number
}

export const defaultHistoryMaxAge: Duration.Input = "30 days"
export const defaultCommandsMaxAge: Duration.Input = "1 hour"
export const defaultDuplicateWindow: Duration.Input = "2 minutes"
export const defaultDeadLetterMaxAge: Duration.Input = "30 days"
export const defaultDeadLetterMaxBytes = 1_073_741_824
export const defaultIngestMaxBytes = 1_073_741_824
export const defaultEventsMaxBytes = 1_073_741_824
export const defaultFollowMaxAge: Duration.Input = "7 days"
export const defaultFollowMaxBytes = 4_294_967_296
export const defaultHistoryMaxBytes = 8_589_934_592
export const defaultDeliverMaxBytes = 2_147_483_648
export const defaultDeliverLaneMaxChunks = 10_000
export const defaultDeliveryDeadLettersPerDestination = 1_000_000
export const defaultDeliveryDeadLettersMaxBytes = 2_147_483_648

const toNanos = (duration: Duration.Input) => nanos(Duration.toMillis(duration))

type Config = StreamConfig

/** The streams; all on disk (durability: acknowledged only once stored). */
export const streamConfigs = (options: TopologyOptions): ReadonlyArray<Config> => {
  const duplicateWindow = toNanos(options.duplicateWindow ?? defaultDuplicateWindow)
  const common = { storage: StorageType.File, num_replicas: 1, duplicate_window: duplicateWindow }
  const commandsMaxAge = toNanos(options.commandsMaxAge ?? defaultCommandsMaxAge)
  return [
    {
      ...common,
      name: StreamNames.commands,
      subjects: [allCommands],
      // Work queue: a command is removed once an entity actor acknowledges it, or once past every deadline.
      retention: RetentionPolicy.Workqueue,
      discard: DiscardPolicy.Old,
      max_age: commandsMaxAge,
      // JetStream wants the window within the age
      duplicate_window: Math.min(duplicateWindow, commandsMaxAge),
      description: "Commands for entity actors (work queue)"
    } as Config,
    {
      ...common,
      name: StreamNames.history,
      subjects: [allHistory],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: toNanos(options.historyMaxAge ?? defaultHistoryMaxAge),
      max_bytes: options.historyMaxBytes ?? defaultHistoryMaxBytes,
      // Direct get lets readers fetch the last event of an entity without a consumer.
      allow_direct: true,
      description: "Every event in commit order, published by the relay from the event store"
    } as Config,
    {
      ...common,
      name: StreamNames.snapshots,
      subjects: [allSnapshots],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      // One message per subject: a new snapshot replaces the entity's previous one (compaction).
      max_msgs_per_subject: 1,
      allow_direct: true,
      description: "Latest state of each entity"
    } as Config,
    {
      ...common,
      name: StreamNames.checkpoints,
      subjects: [allCheckpoints],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      // The latest position only: whichever process holds the job's lease resumes from it.
      max_msgs_per_subject: 1,
      description: "Checkpoints of jobs that follow the event store (the relay)"
    } as Config,
    {
      ...common,
      name: StreamNames.deadLetters,
      subjects: [allDeadLetters],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: toNanos(options.deadLetterMaxAge ?? defaultDeadLetterMaxAge),
      max_bytes: options.deadLetterMaxBytes ?? defaultDeadLetterMaxBytes,
      description: "Messages the platform could not handle (infra/nats/deadLetters.ts), kept for people to look at"
    } as Config,
    {
      ...common,
      name: StreamNames.ingest,
      subjects: [allIngest],
      // Work queue: a job's message goes once its translator (one durable consumer per partner,
      // `ingest.<partner>`, non-overlapping) acknowledged it done or failed.
      retention: RetentionPolicy.Workqueue,
      // Full: a new message is refused (the door answers 503), never old work dropped. Its publishers
      // keep INGEST_MAX_BYTES; JetStream's max_bytes is a backstop at twice that (streamBytes.ts).
      discard: DiscardPolicy.New,
      max_bytes: backstopBytes(options.ingestMaxBytes ?? defaultIngestMaxBytes),
      description: "Ingestion work per partner: stored files' jobs and real-time bodies (infra/ingest/intake.ts)"
    } as Config,
    {
      ...common,
      name: StreamNames.events,
      subjects: [allEvents],
      // Work queue: a batch goes once the app's device shards committed what it produced.
      retention: RetentionPolicy.Workqueue,
      // Full: the intake answers 503 + Retry-After, never drops what it acknowledged. Kept by the
      // intake at EVENTS_MAX_BYTES; JetStream's max_bytes is a backstop at twice that (streamBytes.ts).
      discard: DiscardPolicy.New,
      max_bytes: backstopBytes(options.eventsMaxBytes ?? defaultEventsMaxBytes),
      description: "App events as SDKs sent them, per app (issue 8)"
    } as Config,
    ...[
      { name: StreamNames.eventsClean, subject: allCleanEvents, description: "App events after dedupe and enrichment" },
      { name: StreamNames.sessions, subject: allSessions, description: "Ended sessions of app devices" },
      { name: StreamNames.alerts, subject: allAlerts, description: "Trend alerts per app" },
      { name: StreamNames.receipts, subject: allReceipts, description: "One receipt per delivery request: request id, status, time" }
    ].map(({ name, subject, description }) => ({
      ...common,
      name,
      subjects: [subject],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: toNanos(options.followMaxAge ?? defaultFollowMaxAge),
      max_bytes: options.followMaxBytes ?? defaultFollowMaxBytes,
      description
    } as Config)),
    {
      ...common,
      name: StreamNames.deliver,
      subjects: [allDeliver],
      // Work queue: a chunk goes once its destination's deliverer sent (or dead-lettered) every record.
      retention: RetentionPolicy.Workqueue,
      // Full, or a lane full: the chunk is refused and waits in the outbox on disk; a destination that
      // is down fills its own lanes only, so the others' chunks still go on. Bytes kept by the publisher
      // (a backstop at twice them here: streamBytes.ts); the lanes' count by JetStream, which keeps counts exactly.
      discard: DiscardPolicy.New,
      max_bytes: backstopBytes(options.deliverMaxBytes ?? defaultDeliverMaxBytes),
      max_msgs_per_subject: options.deliverLaneMaxChunks ?? defaultDeliverLaneMaxChunks,
      discard_new_per_subject: true,
      description: "Package chunks per destination: the durable backlog of partner delivery (issue 9)"
    } as Config,
    {
      ...common,
      name: StreamNames.deliveryDeadLetters,
      subjects: [allDeliveryDeadLetters],
      retention: RetentionPolicy.Limits,
      // Full, or a destination's letters at their bound: a new letter is refused (its deliverer waits),
      // never an old one dropped. Bytes kept by the deliverers (a backstop at twice them: streamBytes.ts).
      discard: DiscardPolicy.New,
      max_bytes: backstopBytes(options.deliveryDeadLettersMaxBytes ?? defaultDeliveryDeadLettersMaxBytes),
      max_msgs_per_subject: options.deliveryDeadLettersPerDestination ?? defaultDeliveryDeadLettersPerDestination,
      discard_new_per_subject: true,
      description: "Records a destination refused or could not take after every attempt, kept until replayed or discarded"
    } as Config
  ]
}


/** JetStream's "stream name already in use": another process created it between our update and add. */
const streamNameInUse = 10058
/**
 * JetStream's "maximum number of streams reached". An account whose `max_streams` its streams fill
 * exactly (the consumer accounts' mirrors) gets it, not "name in use", when another process created
 * the last stream between our update and add (seen with two processes started at the same instant).
 */
const maximumStreams = 10027
/**
 * JetStream's "subjects overlap with an existing stream": nats-server 2.9 answers it, not "name in use",
 * to an add racing another process's add of the same stream (seen in CI: 2 of 6 processes started at
 * the same instant failed). A stream of another name on those subjects gives it too: then the update
 * finds no stream, and this error stands.
 */
const subjectsOverlap = 10065

/** Creates the stream, or updates it to `config` when it exists (consumer accounts' mirrors use it too). */
export const ensureStream = (config: Config) =>
  Effect.gen(function*() {
    const { manager } = yield* Nats
    const { name, ...update } = config
    const updateStream = tryNats(`update stream ${name}`, () => manager.streams.update(name, update))
    yield* updateStream.pipe(
      Effect.catchIf(
        (error: NatsError) => isApiError(error.cause, JetStreamApiCodes.StreamNotFound),
        () =>
          tryNats(`add stream ${name}`, () => manager.streams.add(config)).pipe(
            Effect.catchIf((error: NatsError) => isApiError(error.cause, streamNameInUse), () => updateStream),
            // created by another process meanwhile, if the update finds it; the add's error otherwise
            Effect.catchIf((error: NatsError) => isApiError(error.cause, maximumStreams) || isApiError(error.cause, subjectsOverlap), (error) => Effect.mapError(updateStream, () => error))
          )
      )
    )
  })

/**
 * CMD's config, its age never lowered: each process sets the age from its own COMMAND_TIMEOUT, and one
 * started with a shorter timeout must not drop the commands that another still waits for (stop 22
 * noticed: a 1-hour process could cut a 3-hour one's). Lowering it takes an operator's edit.
 */
const keepingLongerAge = (config: Config) =>
  Effect.gen(function*() {
    const { manager } = yield* Nats
    const current = yield* tryNats(`read stream ${config.name}`, () => manager.streams.info(config.name)).pipe(
      Effect.map((info) => info.config.max_age),
      Effect.catchIf((error: NatsError) => isApiError(error.cause, JetStreamApiCodes.StreamNotFound), () => Effect.succeed(0))
    )
    const maxAge = Math.max(config.max_age ?? 0, current)
    return { ...config, max_age: maxAge, duplicate_window: Math.min(config.duplicate_window ?? maxAge, maxAge) }
  })

/** Creates or updates CMD, HISTORY, SNAPSHOTS, CHECKPOINTS, DEADLETTERS, INGEST, EVENTS, EVENTS_CLEAN, SESSIONS, ALERTS, DELIVER, RECEIPTS and DLQ (the KV buckets are created by their first user); safe to run at every start and from several processes. */
export const ensureTopology = (options: TopologyOptions = {}): Effect.Effect<void, NatsError, Nats> =>
  Effect.forEach(streamConfigs(options), (config) =>
    config.name === StreamNames.commands ? Effect.flatMap(keepingLongerAge(config), ensureStream) : ensureStream(config), { discard: true })
