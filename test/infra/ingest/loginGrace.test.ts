/**
 * Connections that do not log in, at both file doors (real ftp-srv and ssh2 servers): each is closed
 * after the login grace time, and one address holds only a few at once, so idle sockets cannot take
 * the slots partners log in with. (Before, found by the outside attack of stop 17: 64 idle TCP
 * connections to each door held every slot with no end, and a partner with the right password was
 * turned away.) Sessions that logged in and then say nothing are closed after the idle time (stop 20).
 */
import { connect, type Socket } from "node:net"
import { Readable } from "node:stream"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { IngestJobs } from "../../../domain/ingest/Job.ts"
import { eventually } from "../../fixtures/http.ts"
import { ftpLogin, layerIngestStores, setCredentials, sftpLogin, sftpRequest, startDoors } from "../../fixtures/fileDoors.ts"

/** A TCP connection that never says a word; resolves once connected. */
const idle = (port: number) =>
  Effect.promise(() =>
    new Promise<{ readonly socket: Socket; readonly closed: Promise<number> }>((resolve) => {
      const socket = connect(port, "127.0.0.1").resume()
      socket.on("error", () => {})
      const started = Date.now()
      const closed = new Promise<number>((done) => socket.once("close", () => done(Date.now() - started)))
      socket.once("connect", () => resolve({ socket, closed }))
    }))

layer(layerIngestStores, { excludeTestServices: true, timeout: 60_000 })("file doors: connections that do not log in", (it) => {
  it.effect("are closed after the grace time, three at most per address (both doors together), while a partner still logs in", () =>
    Effect.gen(function*() {
      const doors = yield* startDoors({ loginGrace: { graceMillis: 1_500, perAddress: 3 } })
      yield* setCredentials("punctual", { password: "punctual-password-1" })
      for (const port of [doors.ftpPort, doors.sftpPort]) {
        const held = [yield* idle(port), yield* idle(port), yield* idle(port)]
        // a 4th from the address is closed as it comes
        const extra = yield* idle(port)
        assert.isBelow(yield* Effect.promise(() => extra.closed), 1_000)
        // the three are closed once their grace time is over
        const closedAfter = yield* Effect.promise(() => Promise.all(held.map((h) => h.closed)))
        for (const ms of closedAfter) assert.isAtLeast(ms, 1_000)
      }
      // one idle connection held at each door (the bound is the address's, both doors together): a
      // partner logs in beside them at both, and its sessions outlive the grace time
      const ftpIdle = [yield* idle(doors.ftpPort)]
      const sftpIdle = [yield* idle(doors.sftpPort)]
      const client = yield* ftpLogin(doors.ftpPort, "punctual", "punctual-password-1")
      const { sftp } = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "punctual", password: "punctual-password-1" })
      yield* Effect.promise(() => Promise.all([...ftpIdle, ...sftpIdle].map((h) => h.closed)))
      yield* Effect.sleep("500 millis")
      yield* Effect.promise(() => client.uploadFrom(Readable.from([Buffer.from("u,s\n")]), "in-time.csv"))
      const listed = yield* Effect.promise(() => new Promise<number>((resolve, reject) => sftp.readdir("/", (error, list) => (error ? reject(error) : resolve(list.length)))))
      assert.isAtLeast(listed, 1)
    }))

  it.effect("a logged-in session idle past the idle time is closed at both doors; one that keeps working, or uploads slowly over FTP, is not", () =>
    Effect.gen(function*() {
      const doors = yield* startDoors({ loginGrace: { idleMillis: 1_500 } })
      yield* setCredentials("drowsy", { password: "drowsy-password-1" })
      const idleFtp = yield* ftpLogin(doors.ftpPort, "drowsy", "drowsy-password-1")
      const idleSftp = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "drowsy", password: "drowsy-password-1" })
      const sftpClosed = Effect.promise(() => new Promise<void>((resolve) => idleSftp.conn.once("close", () => resolve())))
      const busy = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "drowsy", password: "drowsy-password-1" })
      const uploading = yield* ftpLogin(doors.ftpPort, "drowsy", "drowsy-password-1")
      // a file sent in 8 pieces 500 ms apart: its control connection says nothing for 4 s, over twice the idle time
      const pieces = async function*() {
        for (let i = 0; i < 8; i++) {
          yield Buffer.from(`user-${i},seg-a\n`)
          await new Promise((resolve) => setTimeout(resolve, 500))
        }
      }
      const upload = Effect.promise(() => uploading.uploadFrom(Readable.from(pieces()), "slow.csv"))
      const working = Effect.gen(function*() {
        for (let i = 0; i < 8; i++) {
          const listed = yield* sftpRequest<ReadonlyArray<unknown>>((callback) => busy.sftp.readdir("/", callback))
          assert.isUndefined(listed.error)
          yield* Effect.sleep("500 millis")
        }
      })
      const [answer] = yield* Effect.all([upload, working, sftpClosed], { concurrency: "unbounded" })
      assert.strictEqual(answer.code, 226)
      yield* eventually(Effect.sync(() => idleFtp.closed), (closed) => closed, "20 seconds")
      // the busy ones outlived the idle ones
      assert.isFalse(uploading.closed)
      const still = yield* sftpRequest<ReadonlyArray<unknown>>((callback) => busy.sftp.readdir("/", callback))
      assert.isUndefined(still.error)
    }))

  it.effect("an upload trickling under the minimum pace is broken off at both doors, leaving no job; the session's passive port comes back", () =>
    Effect.gen(function*() {
      const doors = yield* startDoors({ uploadPace: { idleMillis: 1_500, minBytesPerSecond: 1_024 } })
      yield* setCredentials("trickler", { password: "trickler-password-1" })
      // 20 bytes every 200 ms: 100 bytes a second, never idle for the idle time (the outside attack of
      // stop 20 held every FTP passive port so, a byte every 20 s)
      const trickle = async function*() {
        for (let i = 0; i < 100; i++) {
          yield Buffer.from(`user-${String(i).padStart(3, "0")},seg-abcd\n`)
          await new Promise((resolve) => setTimeout(resolve, 200))
        }
      }
      const ftp = yield* ftpLogin(doors.ftpPort, "trickler", "trickler-password-1")
      const ftpAnswer = yield* Effect.promise(() => ftp.uploadFrom(Readable.from(trickle()), "slow.csv").then((r) => r.code, (error: { code?: number }) => error.code ?? -1))
      assert.notStrictEqual(ftpAnswer, 226)
      const { sftp } = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "trickler", password: "trickler-password-1" })
      const sftpError = yield* Effect.promise(() =>
        new Promise<Error | undefined>((resolve) => {
          const stream = sftp.createWriteStream("/slow.csv")
          stream.once("error", resolve)
          stream.once("close", () => resolve(undefined))
          Readable.from(trickle()).pipe(stream)
        }))
      assert.isDefined(sftpError)
      assert.deepStrictEqual(yield* IngestJobs.use((jobs) => jobs.list("trickler", { limit: 10 })), [])
      // the same session uploads a whole file at once afterwards
      const again = yield* Effect.promise(() => ftp.uploadFrom(Readable.from([Buffer.from("user-1,seg-a\n")]), "fast.csv"))
      assert.strictEqual(again.code, 226)
    }))
})

