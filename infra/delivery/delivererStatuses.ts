/**
 * Reads what the deliverers write to KV bucket `tributary-delivery-status`: key `<destination>`, or
 * `<destination>.<lane>` per lane. Opened, never created here (its writer decides its settings); before
 * any deliverer made it, every destination simply has no entry.
 */
import { JetStreamApiCodes } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { Effect, Layer, Option, Schema } from "effect"
import { DelivererStatuses, DelivererStatusesError } from "../../domain/delivery/DelivererStatuses.ts"
import { DelivererStatus, deliveryStatusBucket } from "../../domain/delivery/DestinationStatus.ts"
import { bucketKeys } from "../nats/buckets.ts"
import { isApiError } from "../nats/freshConsumer.ts"
import { Nats, tryNats } from "../nats/Nats.ts"

const decodeStatus = Schema.decodeUnknownOption(Schema.fromJsonString(DelivererStatus))

export const make = Effect.gen(function*() {
  const { connection, manager } = yield* Nats
  const bucket = yield* tryNats("open delivery status bucket", () => new Kvm(connection).open(deliveryStatusBucket)).pipe(Effect.orDie)

  const read = (destination: string) =>
    bucketKeys(manager, deliveryStatusBucket, `${destination}.*`).pipe(
      Effect.flatMap((lanes) => tryNats("read delivery status", () => Promise.all([destination, ...lanes].map((key) => bucket.get(key))))),
      Effect.map((entries) => entries.flatMap((entry) => entry === null || entry.operation !== "PUT" ? [] : Option.toArray(decodeStatus(entry.string())))),
      // no deliverer has made the bucket yet
      Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.StreamNotFound), () => Effect.succeed([])),
      Effect.mapError((error) => new DelivererStatusesError({ operation: "read", cause: error.cause }))
    )

  return DelivererStatuses.of({ read })
})

export const layerKv: Layer.Layer<DelivererStatuses, never, Nats> = Layer.effect(DelivererStatuses, make)
