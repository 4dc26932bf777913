/**
 * A lane's watermark (domain/delivery/Watermark.ts) as its DeliveryActor uses it: read when the lane
 * starts, asked about each chunk the lane takes, and moved past each chunk once it is settled — stored
 * before that chunk's ack, one write at a time, so that each write holds every earlier one.
 */
import { Effect, Option, Semaphore } from "effect"
import type { Chunk } from "../../domain/delivery/Chunk.ts"
import { DeliveryLedger, type DeliveryLedgerError } from "../../domain/delivery/DeliveryLedger.ts"
import * as Watermark from "../../domain/delivery/Watermark.ts"

export const makeLaneWatermark = (key: string, incarnation: number | undefined) =>
  Effect.gen(function*() {
    const ledger = yield* DeliveryLedger
    let watermark = Watermark.forIncarnation(Option.getOrUndefined(yield* ledger.watermark(key)), incarnation)
    /** the continuous chunks held and not settled, in the order taken; the refresh chunks held */
    const unsettled: Array<Watermark.ChunkKey> = []
    const refreshesHeld = new Set<string>()
    const writes = yield* Semaphore.make(1)
    const store = (next: () => Watermark.Watermark) =>
      writes.withPermits(1)(Effect.suspend(() => {
        watermark = next()
        return ledger.setWatermark(key, watermark)
      }))

    /**
     * None when the chunk was delivered before (published again past the duplicate window) or a copy
     * of it is held now: skip it. Otherwise it is held, and the effect to run once it is settled.
     */
    const take = (chunk: Chunk): Option.Option<Effect.Effect<void, DeliveryLedgerError>> => {
      const position = Watermark.keyOf(chunk)
      if (position !== undefined) {
        if (Watermark.covers(watermark, position) || unsettled.some((k) => k[0] === position[0] && k[1] === position[1])) return Option.none()
        unsettled.push(position)
        return Option.some(store(() => {
          unsettled.splice(unsettled.indexOf(position), 1)
          return Watermark.settle(watermark, position, unsettled[0])
        }))
      }
      const id = Watermark.refreshIdOf(chunk)
      if (id === undefined) return Option.some(Effect.void)
      if (Watermark.coversRefresh(watermark, id) || refreshesHeld.has(id)) return Option.none()
      refreshesHeld.add(id)
      return Option.some(store(() => {
        refreshesHeld.delete(id)
        return Watermark.settleRefresh(watermark, id)
      }))
    }
    return { take }
  })
