/**
 * A pull consumer's messages (nats.js `consume()`) for the life of the Scope, stopped when it ends.
 *
 * Stopped, not closed: nats.js's `close()` stops the messages (unsubscribes, clears the heartbeat
 * timer) and then waits until their iterator has seen the end, which only its next pull does. Messages
 * never iterated (their user failed, was interrupted or handed its work back between the `consume()`
 * and its first pull) never close, so awaiting `close()` in a finalizer held the scope for good, and
 * everything waiting on it: a device pipeline's restart, the lease it kept renewing, SIGTERM (stop 24's
 * outside attack: an app's pipeline frozen for minutes, its lease held, the process deaf to SIGTERM).
 * `stop()` frees the same resources at once; an iterator still running ends at its next pull.
 */
import type { ConsumerMessages } from "@nats-io/jetstream"
import { Effect } from "effect"
import { tryNats } from "./Nats.ts"

export const consumeScoped = (operation: string, consume: () => Promise<ConsumerMessages>) =>
  Effect.acquireRelease(tryNats(operation, consume), (messages) => Effect.sync(() => messages.stop()))
