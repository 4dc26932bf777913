/**
 * Uploads in the NATS object store (bucket `tributary-uploads`, stream `OBJ_tributary-uploads`, file
 * storage): the store of the Uploads port for processes on several machines, which all reach the same
 * JetStream (`UPLOADS_STORE=nats`).
 *
 * - **Put**: the body is streamed into the object store in 128 KiB chunks, each published and
 *   acknowledged before the next is read, so a file of any size passes through bounded memory; it is
 *   hashed (sha256) and counted on the way. The object's meta entry is written last: an upload is
 *   stored once `put` returns, never half. A body that fails or passes `maxBytes`, or an interrupted
 *   `put`, leaves nothing: its chunks are purged. Chunks a crash left without a meta entry are purged at
 *   the next start once they are old (a live upload on another process writes chunk after chunk).
 * - **Read**: the object's chunks through an ordered consumer, fetched a few at a time as the reader
 *   pulls (nats.js's own `get` pushes the whole object into memory as fast as the server sends it,
 *   which a translator slower than the network would turn into the whole file in memory), the digest
 *   checked at the end. `from` skips bytes as they pass.
 * - **Durable** as JetStream is: a chunk is acknowledged once the server stored it (its own sync policy).
 */
import { createHash } from "node:crypto"
import { DeliverPolicy } from "@nats-io/jetstream"
import { type ObjectInfo, type ObjectStore, Objm, StorageType } from "@nats-io/obj"
import { Clock, Effect, Layer, Option, Stream } from "effect"
import { Uploads, UploadsError, UploadTooLarge } from "../../domain/ingest/Uploads.ts"
import { nextUuidv7 } from "../../domain/uuidv7.ts"
import { Nats } from "../nats/Nats.ts"
import { lastOnSubject } from "../nats/scanSubject.ts"

export const uploadsBucket = "tributary-uploads"

/** `<partner>/<uuid v7>`, as the directory store names them. */
const uploadIdPattern = /^[a-z0-9][a-z0-9_-]{0,62}\/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/
const partnerPattern = /^[a-z0-9][a-z0-9_-]{0,62}$/

/** Chunks without an object older than this at start are a crashed process's. */
const staleChunksMillis = 6 * 60 * 60 * 1_000
/** Chunks fetched ahead of the reader. */
const readAhead = 4

const fail = (operation: string) => (cause: unknown) => new UploadsError({ operation, cause })

const checkedId = (uploadId: string) =>
  uploadIdPattern.test(uploadId) ? Effect.succeed(uploadId) : Effect.fail(new UploadsError({ operation: "locate upload", cause: `not an upload id: ${uploadId}` }))

/** A web stream of `source` that errors as soon as `signal` aborts (an interrupted put stops publishing chunks). */
const abortable = (source: ReadableStream<Uint8Array>, signal: AbortSignal): ReadableStream<Uint8Array> => {
  const reader = source.getReader()
  const aborted = new Promise<never>((_, reject) =>
    signal.addEventListener("abort", () => {
      reject(new Error("upload interrupted"))
      // stops the body's own stream too
      reader.cancel().catch(() => undefined)
    }, { once: true }))
  aborted.catch(() => undefined)
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      // checked first: a read that has data at hand would win the race below
      if (signal.aborted) throw new Error("upload interrupted")
      const { done, value } = await Promise.race([reader.read(), aborted])
      if (done) controller.close()
      else controller.enqueue(value)
    },
    cancel: (reason) => reader.cancel(reason)
  })
}

export const layerObjectStore = (options: { readonly bucket?: string } = {}) =>
  Layer.effect(
    Uploads,
    Effect.gen(function*() {
      const nats = yield* Nats
      const bucket = options.bucket ?? uploadsBucket
      const store = yield* Effect.tryPromise({
        try: () => new Objm(nats.connection).create(bucket, { storage: StorageType.File, description: "Tributary: partners' uploads until their job is done" }),
        catch: fail("open uploads bucket")
      })
      yield* sweep(nats, store, bucket).pipe(Effect.catch((error) => Effect.logWarning("uploads: could not sweep a crashed upload's chunks", error)))

      const put = <E>(partner: string, body: Stream.Stream<Uint8Array, E>, putOptions?: { readonly maxBytes?: number }) =>
        Effect.gen(function*() {
          if (!partnerPattern.test(partner)) return yield* new UploadsError({ operation: "put upload", cause: `not a partner id: ${partner}` })
          const uploadId = `${partner}/${yield* nextUuidv7}`
          const maxBytes = putOptions?.maxBytes ?? Number.POSITIVE_INFINITY
          const hash = createHash("sha256")
          let bytes = 0
          // The body's own failure, or its size, ends the put: kept here to be answered as it is.
          let refused: E | UploadTooLarge | undefined
          const counted = body.pipe(
            Stream.mapEffect((chunk) => {
              bytes += chunk.byteLength
              hash.update(chunk)
              return bytes > maxBytes ? Effect.fail(new UploadTooLarge({ maxBytes })) : Effect.succeed(chunk)
            }),
            Stream.tapError((error) => Effect.sync(() => void (refused = error)))
          )
          const readable = yield* Stream.toReadableStreamEffect(counted)
          yield* Effect.tryPromise({
            try: (signal) => store.put({ name: uploadId }, abortable(readable, signal)),
            catch: (cause) => refused ?? new UploadsError({ operation: "put upload", cause })
          })
          return { uploadId, bytes, digest: hash.digest("hex") }
        })

      const read = (uploadId: string, readOptions?: { readonly from?: number }): Stream.Stream<Uint8Array, UploadsError> =>
        Stream.unwrap(Effect.gen(function*() {
          yield* checkedId(uploadId)
          const info = yield* Effect.tryPromise({ try: () => store.info(uploadId), catch: fail("read upload") })
          if (info === null || info.deleted) return yield* new UploadsError({ operation: "read upload", cause: `no upload ${uploadId}` })
          if (info.chunks === 0) return Stream.empty
          return chunksOf(nats, bucket, info).pipe(skipBytes(readOptions?.from ?? 0))
        }))

      const remove = (uploadId: string) =>
        Effect.flatMap(checkedId(uploadId), (name) => Effect.tryPromise({ try: () => store.delete(name), catch: fail("remove upload") })).pipe(Effect.asVoid)

      return Uploads.of({ put, read, remove })
    })
  )

/** An object's chunks, in order, fetched `readAhead` at a time as they are pulled; the digest checked at the end. */
const chunksOf = (nats: Nats["Service"], bucket: string, info: ObjectInfo): Stream.Stream<Uint8Array, UploadsError> =>
  Stream.unwrap(Effect.gen(function*() {
    const consumer = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => nats.jetstream.consumers.get(`OBJ_${bucket}`, { filter_subjects: `$O.${bucket}.C.${info.nuid}`, deliver_policy: DeliverPolicy.All }),
        catch: fail("read upload")
      }),
      (consumer) => Effect.promise(() => consumer.delete().catch(() => false))
    )
    const hash = createHash("sha256")
    return Stream.paginate(0, (received: number) =>
      Effect.gen(function*() {
        const batch = yield* Effect.tryPromise({
          try: async () => {
            const messages: Array<Uint8Array> = []
            for await (const message of await consumer.fetch({ max_messages: Math.min(readAhead, info.chunks - received), expires: 10_000 })) messages.push(message.data)
            return messages
          },
          catch: fail("read upload")
        })
        if (batch.length === 0) return yield* new UploadsError({ operation: "read upload", cause: `chunk ${received + 1} of ${info.chunks} did not come` })
        for (const chunk of batch) hash.update(chunk)
        const next = received + batch.length
        if (next < info.chunks) return [batch, Option.some(next)] as const
        const digest = `SHA-256=${hash.digest("base64url")}`
        // nats.js writes the digest padded, other clients may not
        if (digest.replace(/=+$/, "") !== info.digest.replace(/=+$/, "")) {
          return yield* new UploadsError({ operation: "read upload", cause: `the upload's bytes do not match its digest (${info.digest})` })
        }
        return [batch, Option.none<number>()] as const
      }))
  }))

/** Drops the first `from` bytes. */
const skipBytes = (from: number) => <E>(stream: Stream.Stream<Uint8Array, E>): Stream.Stream<Uint8Array, E> => {
  if (from <= 0) return stream
  let skip = from
  return stream.pipe(
    Stream.map((chunk) => {
      const cut = Math.min(skip, chunk.byteLength)
      skip -= cut
      return cut === 0 ? chunk : chunk.subarray(cut)
    }),
    Stream.filter((chunk) => chunk.byteLength > 0)
  )
}

/** Purges chunk subjects no object names whose last chunk is old: a put a crash broke off. */
const sweep = (nats: Nats["Service"], store: ObjectStore, bucket: string) =>
  Effect.gen(function*() {
    const stream = `OBJ_${bucket}`
    const info = yield* Effect.tryPromise({
      try: () => nats.manager.streams.info(stream, { subjects_filter: `$O.${bucket}.C.>` }),
      catch: fail("sweep uploads")
    })
    const subjects = Object.keys(info.state.subjects ?? {})
    if (subjects.length === 0) return
    const objects = yield* Effect.tryPromise({ try: () => store.list(), catch: fail("sweep uploads") })
    const live = new Set(objects.map((object) => `$O.${bucket}.C.${object.nuid}`))
    const now = yield* Clock.currentTimeMillis
    for (const subject of subjects) {
      if (live.has(subject)) continue
      const last = yield* Effect.tryPromise({
        try: () => lastOnSubject(nats.manager, stream, subject),
        catch: fail("sweep uploads")
      })
      if (last !== null && now - last.time.getTime() > staleChunksMillis) {
        yield* Effect.tryPromise({ try: () => nats.manager.streams.purge(stream, { filter: subject }), catch: fail("sweep uploads") })
        yield* Effect.logInfo("uploads: a crashed upload's chunks purged", { subject })
      }
    }
  })
