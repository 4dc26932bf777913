/**
 * Where the device pipeline's output goes once committed: EVENTS_CLEAN (`events.clean.<app>`) and
 * SESSIONS (`sessions.<app>`), each message published with `Nats-Msg-Id` = its outbox row id and a
 * header carrying that id. A published row is deleted later (with the next commit); the stream
 * sequence up to which every published row was deleted is its subject's fence. A publisher starting
 * again (after a crash between publish and delete) reads which rows the subject holds after the fence
 * (`seen`): those are deleted without a second publish, the others published, whatever order the
 * earlier publishes and failures came in.
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

/** A row the server stored, at this sequence of its stream. */
export interface PublishedRow {
  readonly id: number
  readonly kind: OutboxKind
  readonly seq: number
}

/** Published rows to delete, and each kind's new fence (the highest sequence among them). */
export interface Settled {
  readonly ids: ReadonlyArray<number>
  readonly fences: Partial<Record<OutboxKind, number>>
}

export const settled = (rows: ReadonlyArray<PublishedRow>): Settled => {
  const fences: Partial<Record<OutboxKind, number>> = {}
  for (const row of rows) fences[row.kind] = Math.max(fences[row.kind] ?? 0, row.seq)
  return { ids: rows.map((row) => row.id), fences }
}

export class CleanPublisher extends Context.Service<CleanPublisher, {
  /** The outbox ids `app`'s `kind` subject holds after stream sequence `after`, and its last sequence (`after` when none). */
  readonly seen: (app: string, kind: OutboxKind, after: number) => Effect.Effect<{ readonly ids: ReadonlySet<number>; readonly last: number }, CleanOutboxError>
  /** Publishes rows in order without waiting in between; returns those the server acknowledged. */
  readonly publish: (app: string, rows: ReadonlyArray<OutboxRow>) => Effect.Effect<ReadonlyArray<PublishedRow>, CleanOutboxError>
}>()("tributary/CleanPublisher") {}
