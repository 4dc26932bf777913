/**
 * JetStream refusing a publish because a stream bounded with `discard: new` is full: a subject holds
 * its `max_msgs_per_subject` (with `discard_new_per_subject`), or the stream its `max_msgs` or
 * `max_bytes`, or JetStream's storage is used up. Such a
 * refusal is not a failure of the bus: what was refused waits where it is and is tried again once the
 * stream drains (DELIVER's chunks in the packages' outbox, a dead letter in its sender).
 *
 * nats-server 2.9 answers these with err_code 10077 (10047 for storage) and these descriptions; `jetstream.publish` throws
 * them as a JetStreamApiError, the AckedPublisher (ackedPublisher.ts) as an Error quoting the answer.
 */
const refusals = [
  ["maximum messages per subject exceeded", "subject full"],
  ["maximum messages exceeded", "stream full"],
  ["maximum bytes exceeded", "stream full"],
  // the server's or the account's storage, not the stream's: full all the same
  ["insufficient resources", "stream full"]
] as const

export type StreamFull = (typeof refusals)[number][1]

/** Why a publish was refused for a full stream, or undefined for any other error. */
export const streamFull = (cause: unknown): StreamFull | undefined => {
  if (!(cause instanceof Error)) return undefined
  const message = cause.message.toLowerCase()
  return refusals.find(([description]) => message.includes(description))?.[1]
}
