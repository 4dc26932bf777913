/**
 * Where the device pipeline's output goes once committed: EVENTS_CLEAN (`events.clean.<app>`) and
 * SESSIONS (`sessions.<app>`), each message published with `Nats-Msg-Id` = its outbox row id and a
 * header carrying that id, so a publisher starting again (after a crash between publish and delete)
 * reads the last id each subject holds and publishes nothing at or below it a second time.
 * Declared here; implemented on JetStream in infra/events/cleanPublisher.ts.
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"

export class CleanOutboxError extends Schema.TaggedError<CleanOutboxError>()("CleanOutboxError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** Which stream an outbox row goes to. */
export type OutboxKind = "clean" | "session"

/** A committed output message waiting to be published. */
export interface OutboxRow {
  readonly id: number
  readonly kind: OutboxKind
  /** the JSON of a CleanEvent or a SessionEnded */
  readonly body: string
}

export class CleanPublisher extends Context.Service<CleanPublisher, {
  /** The highest outbox id each of `app`'s subjects holds (0 when none). */
  readonly tails: (app: string) => Effect.Effect<Readonly<Record<OutboxKind, number>>, CleanOutboxError>
  /** Publishes rows in order without waiting in between; returns the ids the server acknowledged. */
  readonly publish: (app: string, rows: ReadonlyArray<OutboxRow>) => Effect.Effect<ReadonlyArray<number>, CleanOutboxError>
}>()("tributary/CleanPublisher") {}
