/**
 * Where uploads are kept until their job is done (DESIGN.md: "raw uploads kept until their job is
 * done"): written as a stream, never held in memory, fsynced before `put` returns, readable by every
 * process. A directory under DATA_DIR on one machine (infra/ingest/uploadsDir.ts); the NATS object
 * store when processes run on several machines.
 */
import { Context, Schema } from "effect"
import type { Effect, Stream } from "effect"

export const StoredUpload = Schema.Struct({
  uploadId: Schema.String,
  bytes: Schema.Int,
  /** sha256 of the bytes as received (gzip or not), hex */
  digest: Schema.String
})
export type StoredUpload = typeof StoredUpload.Type

export class UploadsError extends Schema.TaggedError<UploadsError>()("UploadsError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** The upload was larger than allowed (`maxBytes`): nothing of it is kept. */
export class UploadTooLarge extends Schema.TaggedError<UploadTooLarge>()("UploadTooLarge", { maxBytes: Schema.Number }) {}

/**
 * The disk the uploads are stored on has less free space than the reserve kept for the platform's own
 * files (the event store, JetStream, the read models): the upload is refused, nothing of it is kept.
 */
export class UploadsFull extends Schema.TaggedError<UploadsFull>()("UploadsFull", { freeBytes: Schema.Number, minFreeBytes: Schema.Number }) {}

export class Uploads extends Context.Service<Uploads, {
  /**
   * Streams `body` into a new upload of `partner` and fsyncs it; answers once it is durable. A body
   * that fails (the client went away) or passes `maxBytes` leaves nothing behind.
   */
  readonly put: <E>(partner: string, body: Stream.Stream<Uint8Array, E>, options?: { readonly maxBytes?: number }) => Effect.Effect<StoredUpload, E | UploadsError | UploadTooLarge | UploadsFull>
  /** The upload's bytes as stored, from byte `from` (default 0), in chunks. */
  readonly read: (uploadId: string, options?: { readonly from?: number }) => Stream.Stream<Uint8Array, UploadsError>
  /** Removes an upload (its job is done and retention says so); nothing if it is gone. */
  readonly remove: (uploadId: string) => Effect.Effect<void, UploadsError>
}>()("tributary/Uploads") {}
