/**
 * Dropping a subject's messages up to a bound taken earlier: `nextSequence` is where the stream will
 * store next, and `purgeBefore` removes the subject's messages stored before it (JetStream's purge by
 * subject and sequence), so what was stored after the bound stays. A deleted destination's drop uses
 * it on DELIVER and DLQ (api/routes/destinationSecrets.ts).
 */
import type { JetStreamManager } from "@nats-io/jetstream"
import { Effect } from "effect"
import { tryNats } from "./Nats.ts"

/** The sequence the next message stored on `stream` will have, of any subject. */
export const nextSequence = (manager: JetStreamManager, stream: string) =>
  tryNats(`next sequence of ${stream}`, () => manager.streams.info(stream)).pipe(Effect.map((info) => info.state.last_seq + 1))

/** Removes `filter`'s messages from `stream` (those stored before `before` only, when given); answers how many. */
export const purgeBefore = (manager: JetStreamManager, stream: string, filter: string, before?: number) =>
  tryNats(`purge ${filter}`, () => manager.streams.purge(stream, { filter, ...(before === undefined ? {} : { seq: before }) })).pipe(
    Effect.map((answer) => answer.purged)
  )
