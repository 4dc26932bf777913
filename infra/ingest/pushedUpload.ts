/**
 * An upload pushed by a server's callbacks (FTP's data connection, SFTP's WRITE requests) into
 * Intake.file as a stream, so a file of any size is never held in memory: the doors hand over chunk
 * after chunk, each taken only once the stream has room (backpressure on the client), and say either
 * "complete" (the job is made once the whole file is durable) or "broken off" (the body fails, and
 * Uploads keeps nothing of it: no job).
 */
import { Cause, Effect, Exit, Fiber, Queue, Schema, Stream } from "effect"
import type { Scope } from "effect"
import { Intake } from "../../domain/ingest/Intake.ts"
import type { Job } from "../../domain/ingest/Job.ts"
import { formatOfFileName } from "../../domain/ingest/uploadFileName.ts"
import { paced, type UploadPace } from "../../domain/uploadPace.ts"

/** The client went away, reset the connection or aborted before the file was complete. */
export class UploadBrokenOff extends Schema.TaggedError<UploadBrokenOff>()("UploadBrokenOff", { reason: Schema.String }) {}

/** Why an upload made no job, in words for an FTP/SFTP client. */
export class UploadRefused extends Schema.TaggedError<UploadRefused>()("UploadRefused", { reason: Schema.String }) {}

export interface PushedUpload {
  /** Hands over the next chunk; completes once it is taken (it waits while the stream is full). */
  readonly write: (chunk: Uint8Array) => Effect.Effect<void, UploadRefused>
  /** The file is complete: ends the body and answers its job once stored, fsynced and recorded. */
  readonly complete: Effect.Effect<Job, UploadRefused>
  /** The upload broke off: nothing of it is kept. */
  readonly abort: (reason: string) => Effect.Effect<void>
  /** bytes handed over so far */
  readonly bytes: () => number
}

/** How many chunks wait between the socket and the store: a few socket reads (64 KiB each at most). */
const BUFFERED_CHUNKS = 16

const refusal = (cause: Cause.Cause<unknown>): UploadRefused => {
  const error = Cause.findErrorOption(cause)
  if (error._tag === "Some") {
    const e = error.value as { readonly _tag?: string; readonly maxBytes?: number; readonly reason?: string }
    if (e._tag === "UploadTooLarge") return new UploadRefused({ reason: `file too large: at most ${e.maxBytes} bytes` })
    if (e._tag === "UploadsFull") return new UploadRefused({ reason: "the platform's disk is too full to take uploads now; try again later" })
    if (e._tag === "UploadBrokenOff") return new UploadRefused({ reason: `upload broken off: ${e.reason}` })
  }
  return new UploadRefused({ reason: Cause.hasInterruptsOnly(cause) ? "the server is stopping" : "the file could not be stored; try again" })
}

/**
 * Starts an upload of `fileName` for `partner` (its format from its name), running Intake.file in a
 * fiber of `scope` (interrupted, keeping nothing, when the doors stop).
 */
export const openPushedUpload = (input: {
  readonly partner: string
  readonly source: "ftp" | "sftp"
  readonly fileName: string
  readonly maxBytes?: number | undefined
  /** how slowly the file may come (UPLOAD_IDLE_TIMEOUT, UPLOAD_MIN_BYTES_PER_SECOND, as over HTTP); none: no bound */
  readonly pace?: UploadPace | undefined
  readonly scope: Scope.Scope
}): Effect.Effect<PushedUpload, never, Intake> =>
  Effect.gen(function*() {
    const intake = yield* Intake
    const queue = yield* Queue.bounded<Uint8Array, UploadBrokenOff | Cause.Done>(BUFFERED_CHUNKS)
    const counted = { bytes: 0 }
    const chunks = Stream.fromQueue(queue)
    // Counted only while the store waits for the door's next chunk: a client trickling a byte now and
    // then held its session, its FTP passive port and its file open for good (the outside attack of stop 20).
    const body = input.pace === undefined
      ? chunks
      : paced(chunks, input.pace, () => counted.bytes, (detail) => new UploadBrokenOff({ reason: `the file came too slowly (${detail})` }))
    const stored = yield* intake.file({
      partner: input.partner,
      source: input.source,
      fileName: input.fileName,
      format: formatOfFileName(input.fileName),
      body,
      maxBytes: input.maxBytes
    }).pipe(
      // Once the store stops reading (done, too large, failed), waiting writers are let go.
      Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Queue.shutdown(queue)),
      Effect.forkIn(input.scope)
    )
    const outcome = Fiber.await(stored).pipe(Effect.flatMap((exit) => Exit.isSuccess(exit) ? Effect.succeed(exit.value) : Effect.fail(refusal(exit.cause))))

    return {
      write: (chunk) =>
        Effect.flatMap(Queue.offer(queue, chunk), (taken) => {
          if (taken) {
            counted.bytes += chunk.byteLength
            return Effect.void
          }
          // The store stopped reading before the file ended: say why.
          return Effect.flatMap(outcome, () => Effect.fail(new UploadRefused({ reason: "the upload was already complete" })))
        }),
      complete: Effect.andThen(Queue.end(queue), outcome),
      abort: (reason) => Effect.andThen(Queue.fail(queue, new UploadBrokenOff({ reason })), Effect.asVoid(Fiber.await(stored))),
      bytes: () => counted.bytes
    }
  })
