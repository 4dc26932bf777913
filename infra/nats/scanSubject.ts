/**
 * Reads of one subject of a stream: its last message (`lastOnSubject`), a message by sequence
 * (`messageAt`), how many messages it holds (`subjectCount`), and its headers scanned (`scanSubject`).
 *
 * The scan reads one subject's message headers from a start — after a stream sequence, or from a time — up to
 * the subject's last message as it was when the scan began, with a short-lived ordered consumer that
 * takes headers only. Publishers resuming after a crash use it to learn which of their ids the stream
 * already holds (the delivery ledger's receipts of a chunk, the device outbox's published rows).
 */
import { DeliverPolicy, JetStreamApiCodes } from "@nats-io/jetstream"
import type { MsgHdrs } from "@nats-io/transport-node"
import { isApiError } from "./freshConsumer.ts"
import type { Nats } from "./Nats.ts"

/** A subject's last message on `stream`, or null when it holds none. */
export const lastOnSubject = (manager: Nats["Service"]["manager"], stream: string, subject: string) =>
  manager.streams.getMessage(stream, { last_by_subj: subject })
    .catch((error: unknown) => isApiError(error, JetStreamApiCodes.NoMessageFound) ? null : Promise.reject(error))

/** The message at `seq` on `stream`, or null when the stream no longer holds it. */
export const messageAt = (manager: Nats["Service"]["manager"], stream: string, seq: number) =>
  manager.streams.getMessage(stream, { seq })
    .catch((error: unknown) => isApiError(error, JetStreamApiCodes.NoMessageFound) ? null : Promise.reject(error))

/**
 * How many messages `stream` holds on the literal `subject`, asked with its first token a wildcard
 * (`*.9002` for `events.9002`): within one stream, whose subjects share that first token, it matches the
 * same messages. nats-server 2.9's count for a literal filter came back empty once the subject's
 * messages spanned blocks after the stream had let go of its first ones: an app's backlog on EVENTS
 * read 0 while it held 1 GB, and one SDK key filled the stream (stop 26's outside attack). A wildcard
 * is counted over every block.
 */
export const subjectCount = async (manager: Nats["Service"]["manager"], stream: string, subject: string): Promise<number> =>
  (await manager.streams.info(stream, { subjects_filter: countFilter(subject) })).state.subjects?.[subject] ?? 0

/** The filter subjectCount asks with: `subject` with its first token a wildcard. */
export const countFilter = (subject: string) => subject.replace(/^[^.]+/, "*")

export type ScanStart = { readonly afterSeq: number } | { readonly sinceMs: number }

/** Calls `visit` with each message's headers; answers the last sequence scanned up to (undefined: the subject holds nothing from `start`). */
export const scanSubject = async (
  { jetstream, manager }: Pick<Nats["Service"], "jetstream" | "manager">,
  stream: string,
  subject: string,
  start: ScanStart,
  visit: (headers: MsgHdrs | undefined) => void
): Promise<number | undefined> => {
  const last = await lastOnSubject(manager, stream, subject)
  if (last === null || ("afterSeq" in start ? last.seq <= start.afterSeq : last.time.getTime() < start.sinceMs)) return undefined
  const consumer = await jetstream.consumers.get(stream, {
    // one subject as a string: nats-server 2.9 takes a single filter only
    filter_subjects: subject,
    ...("afterSeq" in start
      ? start.afterSeq === 0 ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start.afterSeq + 1 }
      : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(start.sinceMs).toISOString() }),
    headers_only: true
  })
  try {
    for (;;) {
      const batch = await consumer.fetch({ max_messages: 1_000, expires: 2_000 })
      let count = 0
      let reachedLast = false
      for await (const msg of batch) {
        count++
        visit(msg.headers)
        if (msg.seq >= last.seq) reachedLast = true
      }
      if (count === 0 || reachedLast) return last.seq
    }
  } finally {
    await consumer.delete().catch(() => undefined)
  }
}
