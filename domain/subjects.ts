/**
 * NATS subjects, JetStream stream names and KV bucket names (DESIGN.md, Contracts): the one place
 * they are spelled. Pure, so actors and projections can name subjects without depending on infra/.
 */

/** The JetStream streams Tributary declares (infra/nats/topology.ts creates them). */
export const StreamNames = {
  /** the command work queue: `cmd.<type>.<shard>.<id>` */
  commands: "CMD",
  /** every event in commit order: `history.<type>.<id>` */
  history: "HISTORY",
  /** each entity's latest state only: `snapshot.<type>.<id>` */
  snapshots: "SNAPSHOTS",
  /** durable positions of jobs that follow the event store (the relay): `checkpoint.<job>` */
  checkpoints: "CHECKPOINTS",
  /** messages the platform could not handle, kept for people to look at: `deadletter.<stream>.<reason>` */
  deadLetters: "DEADLETTERS",
  /** ingestion work, per partner: `ingest.<partner>` (a stored file's job, or a real-time POST's records) */
  ingest: "INGEST",
  /** app events as SDKs sent them, per app: `events.<app>` (issue 8; app ids are decimal, never `clean`) */
  events: "EVENTS",
  /** app events after dedupe and enrichment: `events.clean.<app>` */
  eventsClean: "EVENTS_CLEAN",
  /** ended sessions: `sessions.<app>` */
  sessions: "SESSIONS",
  /** trend alerts: `alerts.<app>` */
  alerts: "ALERTS",
  /** delivery work, per destination and lane: `deliver.<destination>.<lane>` (package chunks, issue 9) */
  deliver: "DELIVER",
  /** what a destination received: `receipt.<destination>` (request id, status, time; one per request) */
  receipts: "RECEIPTS",
  /** records a destination refused or could not take after every attempt: `dlq.<destination>` */
  deliveryDeadLetters: "DLQ"
} as const

/**
 * The KV buckets (streams `KV_<bucket>`) that coordinate several platform processes. On nats-server
 * 2.9 a KV entry's time to live is the bucket's: an entry not written again within it disappears.
 */
export const BucketNames = {
  /** one entry per live process (`<member id>`), re-written as its heartbeat */
  members: "tributary-members",
  /** one entry per held lease (`shard.<n>`, `job.<name>`), whose value is its holder's member id */
  leases: "tributary-leases",
  /** one entry per dead letter being replayed (`<destination>.<DLQ sequence>`): a second replay skips it */
  deadLetterClaims: "tributary-dead-letter-claims",
  /** one entry per delivery dead letter (`<destination>.<hash of its id>`): its DLQ sequence (infra/delivery/deadLetterIndex.ts) */
  deadLetterIndex: "tributary-dead-letter-index",
  /** one entry per share of a bound held while its command may still land (`lanes.<destination>`): infra/nats/reservations.ts */
  reservations: "tributary-reservations"
} as const

/** The lease key of a shard's commands. */
export const shardLeaseKey = (shard: number): string => `shard.${shard}`
/** The lease key of a job that must run in one process at a time (the relay, a listener on a fixed port). */
export const jobLeaseKey = (job: string): string => `job.${job}`
/** Lease keys of shards start with this. */
export const shardLeasePrefix = "shard."

export const commandSubject = (entityType: string, shard: number, entityId: string): string => `cmd.${entityType}.${shard}.${entityId}`
/**
 * A batch of commands for entities of one shard (CommandBus.sendBatch): `_batch` cannot be an entity
 * type (types start with a letter), and the shard's filter below takes it in the shard's order.
 */
export const batchSubject = (shard: number, batchId: string): string => `cmd._batch.${shard}.${batchId}`
/** Every command of one shard, whatever its entity type: one consumer's single filter subject. */
export const shardCommands = (shard: number): string => `cmd.*.${shard}.*`
export const historySubject = (entityType: string, entityId: string): string => `history.${entityType}.${entityId}`
export const snapshotSubject = (entityType: string, entityId: string): string => `snapshot.${entityType}.${entityId}`
export const checkpointSubject = (job: string): string => `checkpoint.${job}`
/** A dead letter taken from `stream` (e.g. CMD) for `reason`. */
export const deadLetterSubject = (stream: string, reason: string): string => `deadletter.${stream.toLowerCase()}.${reason}`

/** A partner's ingestion work (partner ids are slugs: safe subject tokens). */
export const ingestSubject = (partner: string): string => `ingest.${partner}`

/** An app's events as the SDK sent them (app ids are 64-bit decimal strings: safe tokens). */
export const eventsSubject = (app: string): string => `events.${app}`
/** An app's deduplicated, enriched events. */
export const cleanEventsSubject = (app: string): string => `events.clean.${app}`
export const sessionsSubject = (app: string): string => `sessions.${app}`
export const alertsSubject = (app: string): string => `alerts.${app}`
/**
 * A destination's package chunks, per lane (destination ids are slugs: safe tokens). A destination has
 * one lane unless its limit is split over several owners; a user's records always take the same lane,
 * so a remove never overtakes its add.
 */
export const deliverSubject = (destination: string, lane = 0): string => `deliver.${destination}.${lane}`
/** Every lane of a destination's chunks, as a subject filter. */
export const destinationLanes = (destination: string): string => `deliver.${destination}.*`
export const receiptSubject = (destination: string): string => `receipt.${destination}`
export const deliveryDeadLetterSubject = (destination: string): string => `dlq.${destination}`

/** Every subject of a stream, as its subject filter. */
export const allCommands = "cmd.>"
export const allHistory = "history.>"
export const allSnapshots = "snapshot.>"
export const allCheckpoints = "checkpoint.>"
export const allDeadLetters = "deadletter.>"
export const allIngest = "ingest.>"
/** EVENTS takes `events.<app>` only (two tokens), EVENTS_CLEAN `events.clean.<app>`: they do not overlap. */
export const allEvents = "events.*"
export const allCleanEvents = "events.clean.*"
export const allSessions = "sessions.*"
export const allAlerts = "alerts.*"
export const allDeliver = "deliver.>"
export const allReceipts = "receipt.*"
export const allDeliveryDeadLetters = "dlq.*"
