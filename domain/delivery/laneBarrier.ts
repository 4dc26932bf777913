/**
 * The lane barrier (issue 9: a remove never overtakes its add, also while `lanes` changes). A user's
 * records take lane hash(user) mod `lanes`, and lanes keep no order between them: when a destination's
 * lane count changes, a user's later records may take another lane than the earlier ones still waiting.
 * So the package publisher puts a destination's chunks split for a new count on DELIVER only once
 * DELIVER holds none of that destination (every earlier chunk delivered or dead-lettered): the two
 * splits never wait on DELIVER together. Pure.
 *
 * The limits too: each lane sends at its share of the destination's limit, taken when it last read the
 * destination. A new split also waits `newSplitHoldMs` from when the publisher first saw it, so that
 * every lane sends at its new share before any of its chunks arrive.
 */

/** How often a running lane re-reads its destination (actors/delivery/runDeliveries.ts): a new share applies within it. */
export const laneRereadMs = 5_000

/**
 * How long at least a new split waits after the publisher first saw it: by then every lane re-read the
 * destination and sends at its new share, and the requests sent at the old shares have left the
 * partner's one-second window (a second, and one more for the re-read itself). Before, found by an
 * outside attack: with `lanes` raised from 1 to 4, the new lanes sent their quarters at once while the
 * old lane went on at the whole limit until its next read: 35 requests in one second against 20.
 */
export const newSplitHoldMs = laneRereadMs + 2_000

/** What may be published now: the first `chunks` chunks, after which DELIVER holds chunks split for `lanes`. */
export interface Publishable {
  readonly chunks: number
  readonly lanes: number | undefined
}

/**
 * Of a destination's next chunks in the outbox (their lane counts in outbox order; undefined: written
 * before chunks were stamped, taken as the split on DELIVER), how many may be published now, given the
 * lane count of its chunks published last (`onDeliver`, undefined: not known) and whether DELIVER holds
 * none of the destination's chunks (`deliverEmpty`). A chunk of another count than `onDeliver` goes
 * only first, onto an empty DELIVER; the ones after it follow while they keep its count.
 */
export const publishable = (
  counts: ReadonlyArray<number | undefined>,
  onDeliver: number | undefined,
  deliverEmpty: boolean
): Publishable => {
  let lanes = onDeliver
  let chunks = 0
  for (const count of counts) {
    if (count !== undefined && count !== lanes) {
      if (chunks > 0 || !deliverEmpty) break
      lanes = count
    }
    chunks++
  }
  return { chunks, lanes }
}

/** The lane count on DELIVER after publishing chunks of these counts (in order) onto `onDeliver`. */
export const lanesAfter = (counts: ReadonlyArray<number | undefined>, onDeliver: number | undefined): number | undefined =>
  counts.reduce((lanes, count) => count ?? lanes, onDeliver)
