/**
 * One memory budget, in bytes, for what the process keeps of its entities: each entity actor's folded
 * state and the command ids it remembers, and the relay's cached states (infra/entityStateCache.ts).
 * When the total passes the budget, the least recently used holders give theirs back (LRU across all
 * of them, not per actor); such an actor reads its entity again (kept snapshot, tail, recent command
 * ids) at its next command. With 10,000 live actors a per-actor bound alone could reach gigabytes.
 * Holders measure what they keep with heapBytes (as V8 holds it).
 *
 * Its functions are synchronous on purpose: the holders call them from their own bookkeeping, between
 * two steps of a command, and an eviction only sets another holder's fields.
 */
import { Context, Effect, Layer, Metric } from "effect"

export const memoryBytes = Metric.gauge("tributary_entity_memory_bytes", {
  description: "bytes this process keeps of its entities: actor states, remembered commands, the relay's cached states (bounded by ENTITY_MEMORY_BYTES)"
})

/** One actor's share of the budget. */
export interface MemoryShare {
  /** Sets how many bytes this actor holds now and marks it most recently used; may evict others, never itself. */
  readonly use: (bytes: number) => void
  /** Gives the share back (the actor forgot its memory or stopped). */
  readonly release: () => void
}

export class EntityMemory extends Context.Service<EntityMemory, {
  /** A share for an actor; `evict` is called (once) when the budget takes it back. */
  readonly register: (evict: () => void) => MemoryShare
  /** bytes held by all shares now */
  readonly bytes: Effect.Effect<number>
  readonly budget: number
}>()("tributary/EntityMemory") {}

export const make = (budget: number): EntityMemory["Service"] => {
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  const shares = new Map<number, { bytes: number; readonly evict: () => void }>()
  let total = 0
  let next = 0
  const shrink = (keep: number) => {
    for (const [key, share] of shares) {
      if (total <= budget) return
      if (key === keep) continue
      shares.delete(key)
      total -= share.bytes
      share.evict()
    }
  }
  return EntityMemory.of({
    budget,
    bytes: Effect.sync(() => total),
    register: (evict) => {
      const key = next++
      return {
        use: (bytes) => {
          const share = shares.get(key)
          if (share === undefined) {
            shares.set(key, { bytes, evict })
          } else {
            shares.delete(key)
            total -= share.bytes
            share.bytes = bytes
            shares.set(key, share)
          }
          total += bytes
          shrink(key)
        },
        release: () => {
          const share = shares.get(key)
          if (share === undefined) return
          shares.delete(key)
          total -= share.bytes
        }
      }
    }
  })
}

/** The budget for the whole process (ENTITY_MEMORY_BYTES). */
export const layer = (budgetBytes: number): Layer.Layer<EntityMemory> => Layer.sync(EntityMemory, () => make(budgetBytes))
