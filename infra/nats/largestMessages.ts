/**
 * The platform's largest messages against the server's `max_payload`, checked once connected. NATS refuses
 * a message above it every time it is tried: a real-time body near REALTIME_MAX_BYTES would be answered 503
 * on every retry, a delivery lane would wait for good on a chunk or a dead letter it cannot publish (with a
 * warning blaming a full stream). nats.conf allows 8 MB; a server of NATS_URL may allow less (nats-server's
 * own default is 1 MB), and is told apart here, at start, by the setting to change.
 */
import { Effect, Schema } from "effect"
import { Nats } from "./Nats.ts"

/** A kind of message the platform publishes, at its longest. */
export interface LargestMessage {
  /** the setting that bounds it */
  readonly setting: string
  /** what it is, for the operator */
  readonly what: string
  /** the most bytes its body can take */
  readonly bytes: number
}

/** Room for a message's headers (its Nats-Msg-Id, the platform's own) beside its body. */
const headerBytes = 1_024

/** Some of the platform's messages could be larger than the server takes. */
export class MessagesTooLarge extends Schema.TaggedError<MessagesTooLarge>()("MessagesTooLarge", { message: Schema.String }) {}

/** What is wrong with `messages` on a server taking `maxPayload` bytes a message; none when all fit. */
export const tooLarge = (maxPayload: number, messages: ReadonlyArray<LargestMessage>): ReadonlyArray<string> =>
  messages
    .filter((m) => m.bytes + headerBytes > maxPayload)
    .map((m) =>
      `${m.setting} lets ${m.what} reach ${m.bytes + headerBytes} bytes, above the NATS server's max_payload of ${maxPayload}: lower ${m.setting} or raise max_payload (nats.conf sets 8MB)`)

/** Fails with MessagesTooLarge when one of `messages` could exceed the connected server's `max_payload`. */
export const checkLargestMessages = (messages: ReadonlyArray<LargestMessage>): Effect.Effect<void, MessagesTooLarge, Nats> =>
  Effect.gen(function*() {
    const { connection } = yield* Nats
    const maxPayload = connection.info?.max_payload
    if (maxPayload === undefined) return
    const problems = tooLarge(maxPayload, messages)
    if (problems.length > 0) return yield* new MessagesTooLarge({ message: problems.join("; ") })
  })
