/**
 * What the processes delivering a destination say about it (DelivererStatus, written about once a
 * second to KV bucket `tributary-delivery-status`): read here for the status route. Declared here;
 * read from the bucket by infra/delivery/delivererStatuses.ts.
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"
import type { DelivererStatus } from "./DestinationStatus.ts"

export class DelivererStatusesError extends Schema.TaggedError<DelivererStatusesError>()("DelivererStatusesError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export class DelivererStatuses extends Context.Service<DelivererStatuses, {
  /** The destination's entries: one (`<destination>`), or one per lane (`<destination>.<lane>`); none before a deliverer wrote. */
  readonly read: (destination: string) => Effect.Effect<ReadonlyArray<DelivererStatus>, DelivererStatusesError>
}>()("tributary/DelivererStatuses") {}
