/**
 * Which life of a destination id something belongs to. A destination deleted and created again under
 * the same id (maybe for another partner, another URL) is a new incarnation: its predecessor's chunks
 * and dead letters must never reach it. The incarnation is the stream revision of the `EntityCreated`
 * event that began the life: the same in every process and after every restart, and larger for each
 * later life. Chunks and dead letters written before incarnations existed carry none: they belong to
 * whatever incarnation exists.
 */
import { Schema } from "effect"

export const Incarnation = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)).annotate({
  description: "the revision of the EntityCreated event that began the destination's life it belongs to"
})
export type Incarnation = typeof Incarnation.Type

/**
 * How a stamp relates to the incarnation a reader knows: `current` (or unstamped), `older` (a deleted
 * predecessor's: drop it), `newer` (the destination was created again since the reader loaded it).
 */
export const compareIncarnation = (stamp: number | undefined, known: number | undefined): "current" | "older" | "newer" =>
  stamp === undefined || known === undefined || stamp === known ? "current" : stamp < known ? "older" : "newer"

/** Whether a stamped item belongs to the incarnation now alive. */
export const belongsTo = (stamp: number | undefined, current: number | undefined): boolean => compareIncarnation(stamp, current) === "current"
