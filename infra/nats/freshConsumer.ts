/**
 * A durable pull consumer made anew: deleted if it exists, then added with `config`. Taking over a
 * shard's commands or a partner's ingestion work this way delivers again, in stream order, every
 * message the previous holder had not acknowledged, before any newer one.
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import type { ConsumerConfig } from "@nats-io/jetstream"
import { Effect } from "effect"
import { type Nats, tryNats } from "./Nats.ts"

/** Whether a NATS failure is the JetStream API error `code`. */
export const isApiError = (cause: unknown, code: number) => cause instanceof JetStreamApiError && cause.code === code

export const freshConsumer = (
  { jetstream, manager }: Pick<Nats["Service"], "jetstream" | "manager">,
  stream: string,
  config: Partial<ConsumerConfig> & { readonly durable_name: string }
) =>
  Effect.gen(function*() {
    const name = config.durable_name
    yield* tryNats(`delete consumer ${name}`, () => manager.consumers.delete(stream, name)).pipe(
      Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.ConsumerNotFound), () => Effect.succeed(false))
    )
    yield* tryNats(`add consumer ${name}`, () => manager.consumers.add(stream, config))
    return yield* tryNats(`get consumer ${name}`, () => jetstream.consumers.get(stream, name))
  })
