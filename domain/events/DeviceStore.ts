/**
 * The device pipeline's durable state (issue 8 items 2, 3): per device (a 16-byte key of app and
 * device id) its dedupe state and its sessions; per app the EVENTS messages already consumed and the
 * outbox of what they produced. `commit` writes a batch's device states, outbox rows and consumed
 * sequences in ONE transaction, so a crash at any point leaves either all of a batch or none of it.
 * Declared here; implemented on SQLite in infra/events/deviceStoreSqlite.ts (`DATA_DIR/devices.db`).
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"
import type { OutboxKind, OutboxRow, Settled } from "./CleanOutbox.ts"
import type { DedupeState } from "./dedupe.ts"
import type { SessionsState } from "./sessions.ts"

export class DeviceStoreError extends Schema.TaggedError<DeviceStoreError>()("DeviceStoreError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** A device's sessions, with its id (the reminder ends a session knowing only the device's key). */
export interface DeviceSessions {
  readonly deviceId: string
  readonly state: SessionsState
}

/** A device's durable state (keyed by the 16-byte key as hex). */
export interface DeviceState {
  readonly dedupe: DedupeState
  readonly sessions: DeviceSessions
}

export interface DeviceCommit {
  readonly app: string
  /**
   * The committing pipeline's claim of the app (`claim`): refused when another pipeline claimed it since,
   * so a pipeline that lost its lease mid-commit never commits over its successor. Unchecked when absent.
   */
  readonly epoch?: number | undefined
  /** the new states of the devices the batch changed (each only its dedupe, its sessions, or both) */
  readonly dedupe: ReadonlyMap<string, DedupeState>
  readonly sessions: ReadonlyMap<string, DeviceSessions>
  readonly outbox: ReadonlyArray<{ readonly kind: OutboxKind; readonly body: string }>
  /** EVENTS sequences this batch consumed */
  readonly consumed: ReadonlyArray<number>
  /** EVENTS sequences acknowledged since: their records can go */
  readonly acknowledged: ReadonlyArray<number>
  /** outbox rows published since: deleted in this transaction, not in one (and an fsync) of their own, and the fences raised */
  readonly published?: Settled
}

/** Bytes on disk of the dedupe state (table and its index pages) and the devices it holds. */
export interface DedupeFootprint {
  readonly bytes: number
  readonly devices: number
}

export class DeviceStore extends Context.Service<DeviceStore, {
  /** The states of these devices (absent: a device never seen). */
  readonly load: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Partial<DeviceState>>, DeviceStoreError>
  /**
   * Claims `app` for a pipeline starting: answers its epoch (one more than the last claim's), after every
   * write this process asked for before it, so the pipeline reads what a predecessor here committed; a
   * predecessor elsewhere, paused past its lease, finds its commits refused from then on (DeviceCommit.epoch).
   */
  readonly claim: (app: string) => Effect.Effect<number, DeviceStoreError>
  readonly commit: (batch: DeviceCommit) => Effect.Effect<void, DeviceStoreError>
  /** Of these EVENTS sequences of `app`, those already committed (consumed before a crash, not acked). */
  readonly consumed: (app: string, seqs: ReadonlyArray<number>) => Effect.Effect<ReadonlySet<number>, DeviceStoreError>
  /** Devices of `app` with an open session not moved since `before` (server ms), at most `limit`. */
  readonly idle: (app: string, before: number, limit: number) => Effect.Effect<ReadonlyArray<string>, DeviceStoreError>
  /**
   * Apps whose pipeline has work besides what waits on EVENTS: open sessions to end, and outbox rows
   * not yet published (a process killed between a commit and its publish leaves them; found by an
   * outside attack: a quiet app's last events stayed out of its aggregates until its next event).
   */
  readonly appsWithWork: Effect.Effect<ReadonlyArray<string>, DeviceStoreError>
  /** `app`'s outbox rows after `afterId`, oldest first: at most `limit` rows, and none past the one that reaches `maxChars` of bodies. */
  readonly outbox: (app: string, afterId: number, limit: number, maxChars: number) => Effect.Effect<ReadonlyArray<OutboxRow>, DeviceStoreError>
  /** Deletes published rows of `app` and raises its fences. */
  readonly published: (app: string, settled: Settled) => Effect.Effect<void, DeviceStoreError>
  /** The stream sequence per kind up to which `app`'s published rows were all deleted (absent: none recorded yet). */
  readonly fences: (app: string) => Effect.Effect<Partial<Record<OutboxKind, number>>, DeviceStoreError>
  readonly footprint: Effect.Effect<DedupeFootprint, DeviceStoreError>
}>()("tributary/DeviceStore") {}
