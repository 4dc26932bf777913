/**
 * Where the events route puts an app's accepted events (issue 8, intake): EVENTS (`events.<app>`) as
 * EventBatch messages. Implemented in infra/events/eventIntake.ts. Every refusal is IntakeError (503
 * + Retry-After): EVENTS full (its bytes bound), or the app's device pipeline too far behind (its
 * pending batches, or their bytes: one app's share of EVENTS), so the intake never buffers without
 * bound and one app cannot take the stream from the others.
 */
import { Context } from "effect"
import type { Effect } from "effect"
import type { IntakeError } from "../ingest/Intake.ts"
import type { CheckedEvent } from "./eventChecks.ts"

export class EventIntake extends Context.Service<EventIntake, {
  /** Fails when the app's device pipeline has more batches, or bytes of them, pending than its bounds (checked ~once a second). */
  readonly admit: (app: string) => Effect.Effect<void, IntakeError>
  /**
   * Publishes the events as EventBatch messages of bounded size, answering once JetStream stored every
   * one of them (the number of messages). A failure may leave some stored: sending the batch again is
   * harmless, since dedupe by (app, device, seq) drops what arrived twice.
   */
  readonly publish: (input: {
    readonly app: string
    readonly receivedAt: string
    readonly events: ReadonlyArray<CheckedEvent>
  }) => Effect.Effect<number, IntakeError>
}>()("tributary/events/EventIntake") {}
