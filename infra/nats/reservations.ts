/**
 * Shares of a bound that requests hold while their commands may still land (bucket
 * `tributary-reservations`, key `<bound>.<holder>`, value `{amount, until}`). A request writes its
 * reservation in its turn (infra/nats/sharedTurns.ts) before it sends its command, and deletes it once
 * the read model shows what the command did; the next check counts the reservations besides the read
 * model. One whose writer died stays until its `until` (the command's deadline and a margin), past
 * which its command can no longer land, and is ignored after. Before (the outside attack of stop 30), a
 * process SIGKILLed after sending its command took its turn with it: the next process checked a read
 * model that did not list that command yet, the command landed later, and 11 lanes stood against 10.
 */
import { Effect, Option, Schema } from "effect"
import { BucketNames } from "../../domain/subjects.ts"
import { bucketKeys, openBucket } from "./buckets.ts"
import { Nats, tryNats } from "./Nats.ts"

const Reservation = Schema.Struct({ amount: Schema.Int, until: Schema.Number })
const decodeReservation = Schema.decodeUnknownOption(Schema.fromJsonString(Reservation))

export const makeReservations = Effect.gen(function*() {
  const { manager } = yield* Nats
  // entries live until deleted, or an hour after their last write (what a dead writer left)
  const kv = yield* openBucket(BucketNames.reservations, { ttl: "1 hour" })

  /** Holds `amount` of `bound` for `holder` until `until` (epoch ms) at most. */
  const hold = (bound: string, holder: string, amount: number, until: number) =>
    tryNats(`reserve ${bound}`, () => kv.put(`${bound}.${holder}`, JSON.stringify({ amount, until }))).pipe(Effect.asVoid)

  /** Gives `holder`'s share of `bound` back. */
  const release = (bound: string, holder: string) => tryNats(`release ${bound}`, () => kv.delete(`${bound}.${holder}`)).pipe(Effect.asVoid)

  /** The shares of `bound` held now, by holder (those past their `until` left out, as is what does not decode). */
  const held = (bound: string, now: number) =>
    Effect.gen(function*() {
      const keys = yield* bucketKeys(manager, BucketNames.reservations, `${bound}.*`)
      const shares = new Map<string, number>()
      for (const key of keys) {
        const entry = yield* tryNats(`read ${key}`, () => kv.get(key))
        if (entry === null || entry.operation !== "PUT") continue
        const share = decodeReservation(entry.string())
        if (Option.isSome(share) && share.value.until > now) shares.set(key.slice(bound.length + 1), share.value.amount)
      }
      return shares as ReadonlyMap<string, number>
    })

  return { hold, release, held }
})

export type Reservations = Effect.Success<typeof makeReservations>
