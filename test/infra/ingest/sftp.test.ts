import { assert, describe, layer } from "@effect/vitest"
import { createHash, randomBytes } from "node:crypto"
import { readdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { gzipSync } from "node:zlib"
import { Effect, Option } from "effect"
import ssh2 from "ssh2"
import { ed25519KeyPair } from "../../../infra/ingest/sshPublicKey.ts"
import { IngestJobs } from "../../../domain/ingest/Job.ts"
import { layerIngestStores, setCredentials, sftpLogin, sftpPut, sftpRequest, startDoors, TestIngestDir } from "../../fixtures/fileDoors.ts"
import { eventually } from "../../fixtures/http.ts"

const { utils } = ssh2

const jobsOf = (partner: string) => IngestJobs.use((jobs) => jobs.list(partner, { limit: 100 }))
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")
const { STATUS_CODE } = utils.sftp

layer(layerIngestStores, { excludeTestServices: true, timeout: 60_000 })("SFTP door", (it) => {
  describe("an upload", () => {
    it.effect("of a gzip file with a password becomes a job, source sftp, with the file's digest and size, and shows in the folder", () =>
      Effect.gen(function*() {
        const doors = yield* startDoors()
        yield* setCredentials("acme", { password: "acme-password-1" })
        const file = gzipSync(Buffer.from(Array.from({ length: 40_000 }, (_, i) => `user-${i},${randomBytes(12).toString("hex")}`).join("\n")))
        const { sftp } = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "acme", password: "acme-password-1" })
        assert.strictEqual(yield* sftpPut(sftp, "/segments.csv.gz", file), undefined)

        // The CLOSE was answered once the job was recorded: it is there now.
        const [job, ...others] = yield* jobsOf("acme")
        assert.deepStrictEqual(others, [])
        assert.deepInclude(job, { partner: "acme", source: "sftp", state: "stored", fileName: "segments.csv.gz", bytes: file.length, digest: sha256(file) })
        assert.strictEqual(Option.getOrThrow(yield* IngestJobs.use((jobs) => jobs.get(job!.id))).format, "partner")

        const listing = yield* sftpRequest<ReadonlyArray<ssh2.FileEntryWithStats>>((cb) => sftp.readdir("/", cb))
        assert.deepStrictEqual(listing.value?.map((f) => [f.filename, f.attrs.size]), [["segments.csv.gz", file.length]])
      }))

    it.effect("with an SSH key, by fastPut's parallel writes, becomes a job; a key that is not the partner's is refused", () =>
      Effect.gen(function*() {
        const doors = yield* startDoors()
        const dir = yield* TestIngestDir
        const keys = ed25519KeyPair()
        const stranger = ed25519KeyPair()
        yield* setCredentials("keyed", { sshPublicKeys: [keys.public] })
        const refused = yield* Effect.flip(sftpLogin(doors.sftpPort, doors.hostKey, { username: "keyed", privateKey: stranger.private }))
        assert.match(refused.message, /authentication methods failed/)

        const { sftp } = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "keyed", privateKey: keys.private })
        const file = randomBytes(3 * 1024 * 1024 + 17)
        const local = join(dir, "local-upload.jsonl.gz")
        writeFileSync(local, file)
        const sent = yield* sftpRequest<void>((cb) => sftp.fastPut(local, "records.jsonl.gz", { concurrency: 16, chunkSize: 32_768 }, (error) => cb(error, undefined)))
        assert.isUndefined(sent.error)
        const [job] = yield* jobsOf("keyed")
        assert.deepInclude(job, { source: "sftp", fileName: "records.jsonl.gz", bytes: file.length, digest: sha256(file) })
        assert.strictEqual(Option.getOrThrow(yield* IngestJobs.use((jobs) => jobs.get(job!.id))).format, "loader")
      }))

    it.effect("broken off midway (the connection drops before CLOSE) makes no job and leaves nothing", () =>
      Effect.gen(function*() {
        const doors = yield* startDoors()
        const dir = yield* TestIngestDir
        const incoming = join(dir, "uploads", ".incoming")
        yield* setCredentials("quitter", { password: "quitter-password-1" })
        const { conn, sftp } = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "quitter", password: "quitter-password-1" })
        const stream = sftp.createWriteStream("half.csv")
        stream.on("error", () => {})
        stream.write(randomBytes(1024 * 1024))
        yield* eventually(Effect.sync(() => readdirSync(incoming)), (names) => names.length > 0, "30 seconds")
        // The client's TCP connection is cut: no CLOSE of the handle ever comes.
        ;(conn as unknown as { readonly _sock: import("node:net").Socket })._sock.destroy()
        yield* eventually(Effect.sync(() => readdirSync(incoming)), (names) => names.length === 0, "30 seconds")
        const next = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "quitter", password: "quitter-password-1" })
        assert.strictEqual(yield* sftpPut(next.sftp, "after.csv", Buffer.from("u,s\n")), undefined)
        assert.deepStrictEqual((yield* jobsOf("quitter")).map((j) => j.fileName), ["after.csv"])
        assert.strictEqual(readdirSync(join(dir, "uploads", "quitter")).length, 1, "only the complete upload is stored")
      }))
  })

  describe("logins", () => {
    it.effect("a wrong password or an unknown partner is refused", () =>
      Effect.gen(function*() {
        const doors = yield* startDoors()
        yield* setCredentials("guarded", { password: "guarded-password-1" })
        const wrong = yield* Effect.flip(sftpLogin(doors.sftpPort, doors.hostKey, { username: "guarded", password: "not-the-password" }))
        assert.match(wrong.message, /authentication methods failed/)
        const unknown = yield* Effect.flip(sftpLogin(doors.sftpPort, doors.hostKey, { username: "nobody", password: "guarded-password-1" }))
        assert.match(unknown.message, /authentication methods failed/)
        yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "guarded", password: "guarded-password-1" })
      }))
  })

  describe("a partner's folder", () => {
    it.effect("is its own: another partner's files are not listed or read, and no path reaches outside it", () =>
      Effect.gen(function*() {
        const doors = yield* startDoors()
        yield* setCredentials("alpha", { password: "alpha-password-1" })
        yield* setCredentials("beta", { password: "beta-password-12" })
        const beta = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "beta", password: "beta-password-12" })
        assert.strictEqual(yield* sftpPut(beta.sftp, "beta-secret.csv", Buffer.from("u,s\n")), undefined)

        const { sftp } = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "alpha", password: "alpha-password-1" })
        const own = yield* sftpRequest<ReadonlyArray<ssh2.FileEntryWithStats>>((cb) => sftp.readdir(".", cb))
        assert.deepStrictEqual(own.value, [], "alpha's folder is empty")
        assert.strictEqual((yield* sftpRequest<string>((cb) => sftp.realpath(".", cb))).value, "/")
        for (const path of ["../beta", "/beta", "..", "../../etc", "/etc"]) {
          assert.isDefined((yield* sftpRequest((cb) => sftp.readdir(path, cb))).error, `readdir ${path}`)
          assert.isDefined((yield* sftpRequest((cb) => sftp.stat(path, cb))).error, `stat ${path}`)
        }
        for (const path of ["../beta/x.csv", "/beta/x.csv", "sub/x.csv", "../../tmp/x.csv"]) {
          const opened = yield* sftpRequest((cb) => sftp.open(path, "w", cb))
          assert.strictEqual(opened.error?.code, STATUS_CODE.PERMISSION_DENIED, `write to ${path}`)
        }
        for (const path of ["beta-secret.csv", "../beta/beta-secret.csv", "/etc/passwd"]) {
          assert.isDefined((yield* sftpRequest((cb) => sftp.open(path, "r", cb))).error, `read ${path}`)
        }
        assert.strictEqual((yield* sftpRequest((cb) => beta.sftp.unlink("beta-secret.csv", (e) => cb(e, undefined)))).error?.code, STATUS_CODE.PERMISSION_DENIED)
        assert.strictEqual((yield* sftpRequest((cb) => beta.sftp.rename("beta-secret.csv", "x.csv", (e) => cb(e, undefined)))).error?.code, STATUS_CODE.PERMISSION_DENIED)
        assert.strictEqual((yield* sftpRequest((cb) => sftp.symlink("/etc/passwd", "link", (e) => cb(e, undefined)))).error?.code, STATUS_CODE.PERMISSION_DENIED)
        assert.deepStrictEqual(yield* jobsOf("alpha"), [], "alpha wrote nothing anywhere")
        assert.deepStrictEqual((yield* jobsOf("beta")).map((j) => j.fileName), ["beta-secret.csv"])
      }))

    it.effect("bounds what one session holds: 16 open handles, and 16 MiB written ahead over all its files", () =>
      // Before, found by an outside attack: one session opened 20,500 files (a file descriptor each) and
      // the process had none left for HTTP; 150 files each written 8 MiB ahead held 1.24 GB.
      Effect.gen(function*() {
        const doors = yield* startDoors()
        yield* setCredentials("hoarder", { password: "hoarder-password-1" })
        const { sftp } = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "hoarder", password: "hoarder-password-1" })
        const opened = yield* Effect.forEach(Array.from({ length: 17 }, (_, i) => `f${i}.csv`), (name) => sftpRequest<Buffer>((cb) => sftp.open(name, "w", cb)))
        const handles = opened.flatMap((o) => (o.value === undefined ? [] : [o.value]))
        assert.strictEqual(handles.length, 16)
        assert.strictEqual(opened[16]!.error?.code, STATUS_CODE.FAILURE)
        assert.match(String(opened[16]!.error?.message), /at most 16/)
        // each file 1.5 MiB ahead of its end (a gap at 0 that never comes), in writes of 32 KiB (one SFTP
        // packet; they are answered only once the gap is filled, or when they fail): the 11th passes 16 MiB
        const chunk = randomBytes(32 * 1024)
        const failed = new Set<number>()
        handles.slice(0, 12).forEach((handle, i) => {
          for (let n = 1; n <= 48; n++) sftp.write(handle, chunk, 0, chunk.length, n * chunk.length, (error) => error && failed.add(i))
        })
        yield* eventually(Effect.sync(() => failed.size), (n) => n >= 2, "30 seconds")
        yield* Effect.sleep("500 millis")
        const refused = [...failed].sort((a, b) => a - b)
        assert.deepStrictEqual(refused, [10, 11], "the files past 16 MiB written ahead are failed")
        // closing one (it fails: its file has a gap) frees its handle for another file
        yield* sftpRequest<void>((cb) => sftp.close(handles[0]!, (error) => cb(error, undefined)))
        assert.isDefined((yield* sftpRequest<Buffer>((cb) => sftp.open("again.csv", "w", cb))).value)
      }))

    it.effect("counts what each write holds, not only its bytes: many tiny writes ahead are failed, empty ones hold nothing", () =>
      // Before (stop 31's outside attack), only the bytes counted: 4 million 1-byte writes out of order held
      // 1.17 GB of heap within the 8 MiB bound, and empty writes had no bound at all (5 GB, every lease lapsed).
      Effect.gen(function*() {
        const doors = yield* startDoors()
        yield* setCredentials("tiny", { password: "tiny-password-1" })
        const { sftp } = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "tiny", password: "tiny-password-1" })
        const handle = (yield* sftpRequest<Buffer>((cb) => sftp.open("tiny.csv", "w", cb))).value!
        const empty = yield* sftpRequest<void>((cb) => sftp.write(handle, Buffer.alloc(0), 0, 0, 7, (error) => cb(error, undefined)))
        assert.isUndefined(empty.error, "an empty write is answered at once")
        // 1-byte writes at odd offsets (a gap at 0 that never comes): 256 bytes of overhead each, so the
        // 49,000th or so passes 12 MiB, and every one held is failed
        const one = Buffer.from("x")
        const failed: Array<string> = []
        for (let n = 0; n < 60_000; n++) sftp.write(handle, one, 0, 1, 2 * n + 1, (error) => error && failed.push(String(error.message)))
        yield* eventually(Effect.sync(() => failed.length), (n) => n >= 45_000, "60 seconds")
        assert.match(failed[0]!, /not answered yet/)
      }))

    it.effect("closes a channel whose client does not read its replies", () =>
      // Before (stop 31's re-attack), ssh2 kept every reply a client's window had no room for: a client
      // that never opened its window and kept writing to a failed handle took the process to 1.47 GB.
      Effect.gen(function*() {
        const doors = yield* startDoors()
        yield* setCredentials("deaf", { password: "deaf-password-1" })
        const { conn, sftp } = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "deaf", password: "deaf-password-1" })
        const handle = (yield* sftpRequest<Buffer>((cb) => sftp.open("deaf.csv", "w", cb))).value!
        const one = Buffer.from("x")
        yield* sftpRequest<void>((cb) => sftp.write(handle, one, 0, 1, 0, (error) => cb(error, undefined)))
        assert.isDefined((yield* sftpRequest<void>((cb) => sftp.write(handle, one, 0, 1, 0, (error) => cb(error, undefined)))).error, "the handle failed: a write going back")
        // the client stops opening its window: the server's replies (each answered at once) wait on its side
        ;(conn as unknown as { _protocol: { channelWindowAdjust: () => void } })._protocol.channelWindowAdjust = () => {}
        let closed = false
        sftp.on("close", () => void (closed = true))
        for (let n = 0; n < 120_000; n++) sftp.write(handle, one, 0, 1, 0, () => {})
        yield* eventually(Effect.sync(() => closed), (done) => done, "60 seconds")
      }))

    it.effect("the bounds are the connection's, whatever number of SFTP channels it opens (at most 4)", () =>
      // Before, found by the outside attack of stop 17: the bounds were each SFTP channel's, so one
      // connection with 100 channels held 1,600 files, and 4 connections 20,480: every descriptor again.
      Effect.gen(function*() {
        const doors = yield* startDoors()
        yield* setCredentials("channels", { password: "channels-password-1" })
        const { conn, sftp } = yield* sftpLogin(doors.sftpPort, doors.hostKey, { username: "channels", password: "channels-password-1" })
        const more = yield* Effect.forEach([1, 2, 3, 4], () =>
          Effect.promise(() => new Promise<{ readonly sftp?: ssh2.SFTPWrapper; readonly error?: Error }>((resolve) => conn.sftp((error, s) => resolve(error ? { error } : { sftp: s })))))
        const channels = [sftp, ...more.flatMap((m) => (m.sftp === undefined ? [] : [m.sftp]))]
        assert.strictEqual(channels.length, 4, "a 5th channel is refused")
        assert.isDefined(more[3]!.error)
        // 16 files over the 4 channels, then none more on any of them
        const opened = yield* Effect.forEach(Array.from({ length: 16 }, (_, i) => i), (i) => sftpRequest<Buffer>((cb) => channels[i % 4]!.open(`c${i}.csv`, "w", cb)))
        assert.strictEqual(opened.filter((o) => o.value !== undefined).length, 16)
        for (const channel of channels) {
          const refused = yield* sftpRequest<Buffer>((cb) => channel.open("one-more.csv", "w", cb))
          assert.match(String(refused.error?.message), /at most 16 .* in a connection/)
        }
        // a channel that ends gives its files back to the connection
        yield* Effect.sync(() => channels[1]!.end())
        yield* eventually(sftpRequest<Buffer>((cb) => channels[0]!.open("after.csv", "w", cb)), (o) => o.value !== undefined, "10 seconds")
      }))
  })
})
