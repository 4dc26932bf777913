import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { BucketNames, jobLeaseKey } from "../../../domain/subjects.ts"
import { fileDoorsLease, serveFileDoors } from "../../../infra/ingest/fileDoors.ts"
import { openBucket } from "../../../infra/nats/buckets.ts"
import { withLease } from "../../../infra/nats/lease.ts"
import { tryNats } from "../../../infra/nats/Nats.ts"
import { doorsOptions, layerIngestStores, listening, waitListening } from "../../fixtures/fileDoors.ts"

/** Two would-be servers of the doors, as two processes would be: each on its own ports here, to tell them apart. */
const contender = Effect.gen(function*() {
  const doors = yield* doorsOptions()
  const fiber = yield* Effect.forkChild(withLease(fileDoorsLease, serveFileDoors(doors.options)))
  return { ...doors, fiber }
})

layer(layerIngestStores, { excludeTestServices: true, timeout: 60_000 })("file doors", (it) => {
  describe("served under a lease", () => {
    it.effect("by one process at a time: the other takes over when the first gives it back, and stops when it is taken away", () =>
      Effect.gen(function*() {
        const a = yield* contender
        yield* waitListening(a.ftpPort)
        yield* waitListening(a.sftpPort)
        const b = yield* contender
        // b waits for the lease for as long as a holds it: it does not listen.
        yield* Effect.sleep("1 second")
        assert.isFalse(yield* listening(b.ftpPort), "b's FTP waits")
        assert.isFalse(yield* listening(b.sftpPort), "b's SFTP waits")

        // a stops (its process shuts down): its servers close and the lease is given back; b serves.
        yield* Fiber.interrupt(a.fiber)
        assert.isFalse(yield* listening(a.ftpPort), "a's FTP closed")
        assert.isFalse(yield* listening(a.sftpPort), "a's SFTP closed")
        yield* waitListening(b.ftpPort)
        yield* waitListening(b.sftpPort)

        // Someone else takes the lease (as after a long pause of b's process): b closes both servers.
        const leases = yield* openBucket(BucketNames.leases)
        yield* tryNats("steal", () => leases.put(jobLeaseKey(fileDoorsLease), "thief-4242-abcdef"))
        yield* waitListening(b.ftpPort, false)
        yield* waitListening(b.sftpPort, false)
        yield* Fiber.interrupt(b.fiber)
      }))
  })
})
