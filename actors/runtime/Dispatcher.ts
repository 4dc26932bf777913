/**
 * Feeds a stream of messages to keyed actors so that each key gets its messages in order and one
 * key's full mailbox does not hold up the others: a message that finds its mailbox full waits in a
 * small per-key line, drained by a fiber of its own, and every later message for that key queues
 * behind it. Memory stays bounded by what the source lets be in flight (for JetStream, the
 * consumer's max_ack_pending).
 */
import { Effect, FiberSet } from "effect"
import type { Scope } from "effect"
import type { ActorRegistry } from "./ActorRegistry.ts"

export interface Dispatcher<Msg> {
  /** Hands `msg` to the actor `key`; returns at once unless that would reorder the key's messages. */
  readonly dispatch: (key: string, msg: Msg) => Effect.Effect<void>
}

export const make = <Msg>(
  registry: ActorRegistry<Msg>,
  options: {
    /** what to do with a message whose actor has stopped (e.g. give it back to the bus) */
    readonly onStopped: (msg: Msg) => Effect.Effect<void>
  }
): Effect.Effect<Dispatcher<Msg>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const lines = new Map<string, Array<Msg>>()
    const drainers = yield* FiberSet.make()

    // Sends a key's waiting messages in order, each as soon as its mailbox has room.
    const drain = (key: string, line: Array<Msg>) =>
      Effect.gen(function*() {
        while (line.length > 0) {
          const msg = line[0]!
          yield* registry.tell(key, msg).pipe(Effect.catchTag("ActorStopped", () => options.onStopped(msg)))
          line.shift()
        }
        lines.delete(key)
      }).pipe(
        // Stopping: what still waits goes back to its source rather than being dropped.
        Effect.onInterrupt(() => Effect.forEach(line, options.onStopped, { discard: true }))
      )

    const dispatch = (key: string, msg: Msg) =>
      Effect.suspend(() => {
        const line = lines.get(key)
        if (line !== undefined) {
          line.push(msg)
          return Effect.void
        }
        return registry.offer(key, msg).pipe(
          Effect.catchTags({
            MailboxFull: () => {
              const waiting = [msg]
              lines.set(key, waiting)
              return Effect.asVoid(FiberSet.run(drainers, drain(key, waiting)))
            },
            ActorStopped: () => options.onStopped(msg)
          })
        )
      })

    return { dispatch }
  })
