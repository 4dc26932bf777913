/**
 * The NATS connection shared by the infra modules (topology, relay, consumers, publishers).
 * nats.js types stay inside infra/: the rest of the code sees the services built on top of this one.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import type { NatsConnection } from "@nats-io/transport-node"
import { Context, Effect, Layer, Schedule, Schema } from "effect"
import type { NatsCredentials } from "./NatsServer.ts"

/** A NATS call failed; `operation` names it (e.g. "connect", "publish history"). */
export class NatsError extends Schema.TaggedError<NatsError>()("NatsError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export interface NatsOptions {
  /** e.g. `nats://127.0.0.1:4222`; several servers separated by commas */
  readonly url: string
  /** the connection's name as the server shows it (monitoring, logs) */
  readonly name: string
  /** user and password, where the server requires them (the embedded one does) */
  readonly credentials?: NatsCredentials | undefined
}

/** Runs a nats.js call, failing with `NatsError({ operation })`. */
export const tryNats = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, NatsError> =>
  Effect.tryPromise({ try: f, catch: (cause) => new NatsError({ operation, cause }) })

/**
 * One NATS connection with its JetStream client (publish, consume) and manager (streams, consumers).
 * Built by `Nats.layer`; drained and closed when the layer is released.
 */
export class Nats extends Context.Service<Nats, {
  readonly connection: NatsConnection
  readonly jetstream: JetStreamClient
  readonly manager: JetStreamManager
}>()("tributary/infra/Nats") {
  static readonly layer = (options: NatsOptions): Layer.Layer<Nats, NatsError> => Layer.effect(Nats, make(options))
}

const make = Effect.fnUntraced(function*(options: NatsOptions) {
  const connection = yield* Effect.acquireRelease(
    tryNats("connect", () =>
      connect({
        servers: options.url.split(","),
        name: options.name,
        ...(options.credentials === undefined ? {} : { user: options.credentials.user, pass: options.credentials.password }),
        // Once connected, ride out a server restart: keep reconnecting rather than failing every caller.
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        // Every request (each JetStream publish) would otherwise build an Error for its stack trace:
        // ~10% of the CPU of a command in the benchmark. Our errors carry the operation instead.
        noAsyncTraces: true
      })).pipe(
        // The server may still be starting (platform boot, a restarted container): retry briefly.
        Effect.retry(Schedule.exponential("50 millis").pipe(Schedule.upTo({ times: 8 })))
      ),
    (connection) =>
      // drain: let in-flight publishes and subscriptions finish, then close; close outright if that hangs.
      tryNats("drain", () => connection.drain()).pipe(
        Effect.timeout("5 seconds"),
        Effect.catch(() => tryNats("close", () => connection.close())),
        Effect.ignore
      )
  )
  const manager = yield* tryNats("jetstreamManager", () => jetstreamManager(connection))
  return Nats.of({ connection, jetstream: jetstream(connection), manager })
})
