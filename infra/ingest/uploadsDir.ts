/**
 * Uploads in a directory (DATA_DIR/uploads): the one-machine store of the Uploads port. Each upload is
 * streamed into a temp file (`.incoming/`), hashed (sha256) and counted as it arrives, fsynced, then
 * renamed into `<partner>/<upload id>` and the directory fsynced, so a stored upload is whole and
 * durable, and a body that fails, is interrupted or passes `maxBytes` leaves nothing behind (its temp
 * file is removed; one left by a crash is swept: at once when its name says its process is gone, at
 * start and every 10 minutes, otherwise once 6 hours old). Every process on the same
 * DATA_DIR reads the same files. Processes on several machines use the NATS object store instead.
 */
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import { mkdir, open, readdir, rename, stat, statfs, unlink } from "node:fs/promises"
import type { FileHandle } from "node:fs/promises"
import { join } from "node:path"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Clock, Effect, Exit, Layer, Schedule, Stream } from "effect"
import { Uploads, UploadsError, UploadsFull, UploadTooLarge } from "../../domain/ingest/Uploads.ts"
import { nextUuidv7 } from "../../domain/uuidv7.ts"
import { isGone, pidNamespace } from "../pidNamespace.ts"

/** `<partner>/<uuid v7>`: nothing else is a path here, so no id can reach outside the directory. */
const uploadIdPattern = /^[a-z0-9][a-z0-9_-]{0,62}\/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/
const partnerPattern = /^[a-z0-9][a-z0-9_-]{0,62}$/

/** Temp files older than this are a crashed process's (a live upload writes its file on and on). */
const staleIncomingMillis = 6 * 60 * 60 * 1_000

/**
 * A temp file names its process (PID namespace and pid), so that the sweep removes what a SIGKILLed
 * process left as soon as it is certainly gone. (Before, found by the outside attack of stop 17: they
 * stayed until a start 6 hours later, each killed upload's bytes on disk meanwhile.)
 */
const owner = pidNamespace === undefined ? "" : `${pidNamespace}-${process.pid}.`
const ownedTemp = /^([0-9a-f]{12})-(\d+)\./
const sweepEvery = "10 minutes"

const fail = (operation: string) => (cause: unknown) => new UploadsError({ operation, cause })

const fsyncDir = (dir: string) =>
  Effect.tryPromise({
    try: async () => {
      const handle = await open(dir, "r")
      try {
        await handle.sync()
      } finally {
        await handle.close()
      }
    },
    catch: fail("fsync directory")
  })

/** How often, in bytes written, an upload looks at the free space again. */
const freeSpaceEvery = 16 * 1024 * 1024

/**
 * `minFreeBytes`: the free space (for an unprivileged user) an upload must leave on the directory's
 * disk, checked before it starts and every 16 MiB written; below it the upload is refused (UploadsFull)
 * and nothing kept. The event store, JetStream and the read models share the disk: a partner's files
 * filling it would stop every write of the platform. Default 1 GiB.
 */
export const layerDir = (options: { readonly dir: string; readonly minFreeBytes?: number }) =>
  Layer.effect(
    Uploads,
    Effect.gen(function*() {
      const incoming = join(options.dir, ".incoming")
      yield* Effect.tryPromise({ try: () => mkdir(incoming, { recursive: true, mode: 0o700 }), catch: fail("open uploads directory") })
      yield* sweep(incoming)
      yield* Effect.forkScoped(Effect.repeat(Effect.ignore(Effect.delay(sweep(incoming), sweepEvery)), Schedule.forever))

      const minFreeBytes = options.minFreeBytes ?? 1_073_741_824
      const roomLeft = Effect.flatMap(
        Effect.tryPromise({ try: () => statfs(options.dir), catch: fail("read free space") }),
        (fs) => {
          const freeBytes = fs.bavail * fs.bsize
          return freeBytes < minFreeBytes ? Effect.fail(new UploadsFull({ freeBytes, minFreeBytes })) : Effect.void
        }
      )

      const pathOf = (uploadId: string) =>
        uploadIdPattern.test(uploadId) ? Effect.succeed(join(options.dir, uploadId)) : Effect.fail(new UploadsError({ operation: "locate upload", cause: `not an upload id: ${uploadId}` }))

      const put = <E>(partner: string, body: Stream.Stream<Uint8Array, E>, putOptions?: { readonly maxBytes?: number }) =>
        Effect.gen(function*() {
          if (!partnerPattern.test(partner)) return yield* new UploadsError({ operation: "put upload", cause: `not a partner id: ${partner}` })
          const id = yield* nextUuidv7
          const uploadId = `${partner}/${id}`
          const temp = join(incoming, `${owner}${id}.part`)
          const maxBytes = putOptions?.maxBytes ?? Number.POSITIVE_INFINITY
          const hash = createHash("sha256")
          const count = { bytes: 0, checkedAt: 0 }
          yield* roomLeft
          const written = Effect.acquireUseRelease(
            Effect.tryPromise({ try: () => open(temp, "wx", 0o600), catch: fail("create upload") }),
            (handle) =>
              Stream.runForEachArray(body, (chunks) =>
                Effect.gen(function*() {
                  for (const chunk of chunks) {
                    count.bytes += chunk.byteLength
                    hash.update(chunk)
                  }
                  if (count.bytes > maxBytes) return yield* new UploadTooLarge({ maxBytes })
                  if (count.bytes - count.checkedAt >= freeSpaceEvery) {
                    count.checkedAt = count.bytes
                    yield* roomLeft
                  }
                  yield* writeAll(handle, chunks)
                })).pipe(Effect.andThen(Effect.tryPromise({ try: () => handle.sync(), catch: fail("fsync upload") }))),
            (handle) => Effect.promise(() => handle.close().catch(() => undefined))
          )
          const stored = Effect.gen(function*() {
            yield* written
            const dir = join(options.dir, partner)
            yield* Effect.tryPromise({ try: () => mkdir(dir, { recursive: true, mode: 0o700 }), catch: fail("create partner directory") })
            yield* Effect.tryPromise({ try: () => rename(temp, join(options.dir, uploadId)), catch: fail("store upload") })
            yield* fsyncDir(dir)
            return { uploadId, bytes: count.bytes, digest: hash.digest("hex") }
          })
          // Whatever ends it short of stored (the body failed, too large, interrupted): nothing stays.
          return yield* stored.pipe(Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Effect.promise(() => unlink(temp).catch(() => undefined))))
        })

      return Uploads.of({
        put,
        read: (uploadId, readOptions) =>
          Stream.unwrap(Effect.map(pathOf(uploadId), (path) =>
            NodeStream.fromReadable<Uint8Array, UploadsError>({
              evaluate: () => createReadStream(path, { start: readOptions?.from ?? 0, highWaterMark: 256 * 1024 }),
              onError: fail("read upload")
            }))),
        remove: (uploadId) =>
          Effect.flatMap(pathOf(uploadId), (path) =>
            Effect.tryPromise({
              try: () => unlink(path).catch((error: NodeJS.ErrnoException) => {
                if (error.code !== "ENOENT") throw error
              }),
              catch: fail("remove upload")
            }))
      })
    })
  )

/** Writes every chunk (several at once: one system call for a batch of small socket reads). */
const writeAll = (handle: FileHandle, chunks: ReadonlyArray<Uint8Array>) =>
  Effect.tryPromise({
    try: async () => {
      let pending = chunks.filter((c) => c.byteLength > 0)
      while (pending.length > 0) {
        const { bytesWritten } = await handle.writev(pending as Array<Uint8Array>)
        // A short write: go on from where it stopped.
        let skip = bytesWritten
        const rest: Array<Uint8Array> = []
        for (const chunk of pending) {
          if (skip >= chunk.byteLength) skip -= chunk.byteLength
          else {
            rest.push(skip === 0 ? chunk : chunk.subarray(skip))
            skip = 0
          }
        }
        pending = rest
      }
    },
    catch: fail("write upload")
  })

/** Removes temp files a crashed process left: of a process certainly gone, or old (another live process may be writing its own). */
const sweep = (incoming: string) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const names = yield* Effect.tryPromise({ try: () => readdir(incoming), catch: fail("sweep uploads") })
    for (const name of names) {
      const path = join(incoming, name)
      const named = ownedTemp.exec(name)
      const ownerGone = named !== null && isGone(Number(named[2]), named[1])
      yield* Effect.promise(async () => {
        const info = await stat(path).catch(() => undefined)
        if (info !== undefined && (ownerGone || now - info.mtimeMs > staleIncomingMillis)) await unlink(path).catch(() => undefined)
      })
    }
  })
