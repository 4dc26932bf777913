/**
 * The FTP door (ftp-srv): a partner logs in with its partner id and password, and sees one flat,
 * virtual folder of its own uploads (partnerFolder.ts). Storing a file streams it from the data
 * connection straight into Intake.file (pushedUpload.ts); the client gets `226` only once the whole
 * file is stored, fsynced and its job recorded. Downloads, deletes, renames, folders, appends and
 * resumed transfers are refused with a clear 550; active mode (PORT/EPRT, which makes the server
 * connect wherever the client says) is refused: passive mode only, on the configured port range.
 *
 * FTP marks the end of a file by closing the data connection. The upload is complete when the data
 * connection ends cleanly while the control connection is still open and has not said ABOR; a reset
 * data connection, an ABOR, or the control connection going away before the end (the client quit or
 * died) breaks the upload off and makes no job.
 */
import { createRequire } from "node:module"
import { Writable } from "node:stream"
import { randomUUID } from "node:crypto"
import { networkInterfaces } from "node:os"
import { Effect } from "effect"
import type { Scope } from "effect"
import { FileSystem, FtpSrv } from "ftp-srv"
import type { FtpConnection } from "ftp-srv"
import type { Intake } from "../../domain/ingest/Intake.ts"
import type { IngestJobs } from "../../domain/ingest/Job.ts"
import type { PartnerCredentials } from "../../domain/ingest/PartnerCredentials.ts"
import { fileInFolder, isFolder } from "../../domain/ingest/uploadFileName.ts"
import type { DoorLogins } from "./doorLogins.ts"
import type { LoginGrace } from "./loginGrace.ts"
import { type FolderEntry, listFolder } from "./partnerFolder.ts"
import { openPushedUpload } from "./pushedUpload.ts"
import type { UploadPace } from "../../domain/uploadPace.ts"

export interface FtpDoorOptions {
  readonly host: string
  readonly port: number
  /** passive data connections take a port of this range */
  readonly passivePorts: { readonly min: number; readonly max: number }
  /**
   * the address given to clients for passive connections; default `host`, or when that is a wildcard
   * (0.0.0.0, ::) this machine's first external IPv4 address (ftp-srv gives local clients their own)
   */
  readonly passiveAddress?: string | undefined
  readonly maxConnections: number
  readonly maxUploadBytes?: number | undefined
  readonly uploadPace?: UploadPace | undefined
}

type Services = Intake | IngestJobs | PartnerCredentials
type Run = <A, E>(effect: Effect.Effect<A, E, Services>) => Promise<A>

const wildcard = new Set(["0.0.0.0", "::", ""])

const passiveAddress = (options: FtpDoorOptions): string => {
  if (options.passiveAddress !== undefined) return options.passiveAddress
  if (!wildcard.has(options.host)) return options.host
  const external = Object.values(networkInterfaces()).flat().find((i) => i !== undefined && i.family === "IPv4" && !i.internal)
  return external?.address ?? "127.0.0.1"
}

/**
 * PASV and EPSV end the session's previous passive listener and data connection before opening new
 * ones. ftp-srv replaced them without closing them, and a data connection it took paused never sees
 * its client's end: one session sending PASV 21 times in 52 ms held every port of the range for good,
 * and every later PASV of every partner was refused (found by the outside attack of stop 17). Its
 * commands are patched where ftp-srv keeps them (its registry module: one per process, shared by
 * every server).
 */
interface PassiveState {
  readonly connector?: { readonly dataServer?: import("node:net").Server | null; end?: () => void }
}
const registry = createRequire(import.meta.url)("ftp-srv/src/commands/registry.js") as Record<string, { handler: (this: PassiveState, ...args: Array<unknown>) => unknown; endsPrevious?: boolean }>
for (const directive of ["PASV", "EPSV"]) {
  const command = registry[directive]!
  if (command.endsPrevious === true) continue
  const open = command.handler
  command.handler = function(...args) {
    const previous = this.connector
    if (previous?.end !== undefined) {
      const listener = previous.dataServer
      previous.end()
      // Its listener's 'close' ends it again, later, and ftp-srv's end puts a blank connector in the
      // session's hands: the one this PASV opens would be dropped unended. Ended once is enough.
      previous.end = () => {}
      // a connection the closed listener had accepted but not handed over yet is closed as it arrives
      listener?.on("connection", (socket: import("node:net").Socket) => socket.destroy())
    }
    return open.apply(this, args)
  }
  command.endsPrevious = true
}

/** An address as both sides of a comparison write it: an IPv4 one mapped into IPv6 (`::ffff:1.2.3.4`) is the IPv4 one. */
const plainAddress = (address: string | undefined) => (address ?? "").replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "")

/**
 * A data connection from another address than its session's is dropped, and the session's own still
 * awaited. ftp-srv answered such a one `550` and closed the session: anyone, with no login, connecting
 * to the passive range broke every partner's transfers (3 of 5 uploads in stop 31's outside attack).
 * Patched where ftp-srv keeps its passive connector, before the PASV's answer names the port.
 */
interface PassiveConnector {
  readonly connection: { readonly commandSocket: import("node:net").Socket }
  setupServer: () => PromiseLike<import("node:net").Server>
  sameAddressOnly?: true
}
const Passive = createRequire(import.meta.url)("ftp-srv/src/connector/passive.js") as { prototype: PassiveConnector }
if (Passive.prototype.sameAddressOnly !== true) {
  const setup = Passive.prototype.setupServer
  Passive.prototype.setupServer = function() {
    return setup.apply(this).then((server) => {
      const accept = server.listeners("connection") as Array<(socket: import("node:net").Socket) => void>
      server.removeAllListeners("connection")
      server.on("connection", (socket: import("node:net").Socket) => {
        if (plainAddress(socket.remoteAddress) !== plainAddress(this.connection.commandSocket.remoteAddress)) return void socket.destroy()
        for (const listener of accept) listener(socket)
      })
      return server
    })
  }
  Passive.prototype.sameAddressOnly = true
}

/** ftp-srv logs through bunyan to stdout by default; the platform logs through Effect. */
const silentLog = {
  child: () => silentLog,
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  fatal: () => {}
}

/** How long a finished data connection waits for news of its control connection before the file counts as complete. */
const CONTROL_GRACE_MILLIS = 100

class Refused extends Error {
  readonly code = 550
}

const folderStat = () => ({ name: "/", size: 0, mode: 0o40755, mtime: new Date(), isDirectory: () => true })
const fileStat = (entry: FolderEntry) => ({
  name: entry.name,
  size: entry.bytes,
  mode: 0o100444,
  mtime: new Date(entry.modifiedMillis),
  isDirectory: () => false
})

/** A partner's folder as ftp-srv sees a file system: nothing on disk, nothing outside it. */
class PartnerFolder extends FileSystem {
  private readonly partner: string
  private readonly run: Run
  private readonly scope: Scope.Scope
  private readonly maxUploadBytes: number | undefined
  private readonly pace: UploadPace | undefined
  private readonly active: (control: import("node:net").Socket) => void

  constructor(
    connection: FtpConnection,
    door: {
      partner: string
      run: Run
      scope: Scope.Scope
      maxUploadBytes: number | undefined
      pace: UploadPace | undefined
      active: (control: import("node:net").Socket) => void
    }
  ) {
    super(connection, { root: "/", cwd: "/" })
    this.partner = door.partner
    this.run = door.run
    this.scope = door.scope
    this.maxUploadBytes = door.maxUploadBytes
    this.pace = door.pace
    this.active = door.active
  }

  override currentDirectory() {
    return "/"
  }

  override async get(path: string) {
    // LIST stats its argument first: `-la` and the like name the folder
    if (isFolder(path) || (typeof path === "string" && path.startsWith("-") && isFolder(withoutOptions(path)))) return folderStat()
    const name = fileInFolder(path)
    const entries = name === undefined ? [] : await this.run(listFolder(this.partner))
    const entry = entries.find((e) => e.name === name)
    if (entry === undefined) throw new Refused("no such file in your folder")
    return fileStat(entry)
  }

  override async list(path?: string) {
    if (!isFolder(withoutOptions(path))) throw new Refused("your folder has no sub-folders")
    return (await this.run(listFolder(this.partner))).map(fileStat)
  }

  override async chdir(path?: string) {
    if (!isFolder(path ?? ".")) throw new Refused("your folder has no sub-folders")
    return "/"
  }

  override write(path: string, options: { readonly append?: boolean; readonly start?: unknown } = {}) {
    if (options.append === true || (typeof options.start === "number" && options.start > 0)) {
      // the refused REST is spent: the session's next STOR is a whole file again (ftp-srv keeps it otherwise)
      ;(this.connection as unknown as { restByteCount: number }).restByteCount = 0
      throw new Refused("appending and resuming are not supported: upload the whole file again")
    }
    if (typeof path !== "string") throw new Refused("name the file to upload")
    const name = fileInFolder(path)
    if (name === undefined) throw new Refused("upload to a plain file name in your own folder (no sub-folders, no ..)")
    return { stream: this.uploadStream(name), clientPath: `/${name}` }
  }

  override read(): Promise<never> {
    return Promise.reject(new Refused("downloads are not offered: uploads become jobs (see GET /v1/ingest/{partner}/jobs)"))
  }

  override delete(): Promise<never> {
    return Promise.reject(new Refused("uploads cannot be deleted here"))
  }

  override mkdir(): Promise<never> {
    return Promise.reject(new Refused("your folder has no sub-folders"))
  }

  override rename(): Promise<never> {
    return Promise.reject(new Refused("uploads cannot be renamed"))
  }

  override chmod(): Promise<never> {
    return Promise.reject(new Refused("permissions cannot be changed"))
  }

  override getUniqueName() {
    return `${randomUUID()}.upload`
  }

  /** The stream ftp-srv pipes the data connection into (ended on its clean end, destroyed on a reset). */
  private uploadStream(name: string): Writable {
    const { connection, run, partner, scope, active } = this
    const upload = run(openPushedUpload({ partner, source: "ftp", fileName: name, maxBytes: this.maxUploadBytes, pace: this.pace, scope }))
    const control = (connection as unknown as { readonly commandSocket: import("node:net").Socket }).commandSocket
    // ftp-srv pauses the control connection during a transfer, so its end is not emitted yet; the
    // readable state knows it has ended (the client closed it) as soon as the socket read its EOF.
    const controlGone = () =>
      control.destroyed || control.readableEnded || (control as unknown as { readonly _readableState?: { readonly ended?: boolean } })._readableState?.ended === true
    // The client cancelled (ABOR; for a stream-mode file, clients then close the data connection as if
    // the file were whole): read where the paused control connection holds it, not consumed.
    const aborted = () => /ABOR/i.test(pendingInput(control))
    const stream = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Uint8Array, _encoding, callback) {
        active(control) // the control connection is silent while the file comes: the session is not idle
        upload.then((u) => run(u.write(chunk))).then(() => callback(), (error: unknown) => callback(asError(error)))
      },
      final(callback) {
        setTimeout(() => {
          if (controlGone()) return callback(new Error("the control connection closed before the end of the file"))
          if (aborted()) return callback(new Error("the client aborted the transfer (ABOR)"))
          upload.then((u) => run(u.complete)).then(() => callback(), (error: unknown) => callback(asError(error)))
        }, CONTROL_GRACE_MILLIS)
      },
      destroy(error, callback) {
        // Anything but a clean, complete end breaks the upload off: Uploads keeps nothing of it.
        upload.then((u) => run(u.abort(error?.message ?? "the transfer stopped"))).then(() => callback(error), () => callback(error))
      }
    })
    // ftp-srv ends a stream that has 'close' listeners by emitting 'close' on it (its own fs ends on that).
    stream.once("close", () => {
      if (!stream.writableEnded && !stream.destroyed) stream.end()
    })
    const data = (connection as unknown as { readonly connector: { readonly socket?: import("node:net").Socket } }).connector.socket
    data?.once("close", () => {
      if (!stream.writableEnded) stream.destroy(new Error("the data connection closed before the end of the file"))
    })
    return stream
  }
}

/**
 * What the control connection received and ftp-srv has not read yet (it pauses the connection during a
 * transfer): the readable state's buffered chunks, as Latin-1 text (a Telnet interrupt before ABOR is
 * not UTF-8).
 */
const pendingInput = (control: import("node:net").Socket): string => {
  const buffered = (control as unknown as { readonly _readableState?: { readonly buffer?: unknown } })._readableState?.buffer
  const chunks: Array<unknown> = Array.isArray(buffered) ? buffered : []
  return chunks.map((chunk) => (Buffer.isBuffer(chunk) ? chunk.toString("latin1") : typeof chunk === "string" ? chunk : "")).join("")
}

/** A LIST or NLST argument without the `ls`-style options clients send along (`LIST -la`). */
const withoutOptions = (path: string | undefined): string =>
  (path ?? ".").split(" ").filter((word) => !word.startsWith("-")).join(" ") || "."

const asError = (error: unknown): Error => {
  const reason = (error as { readonly reason?: unknown })?.reason
  return new Error(typeof reason === "string" ? reason : error instanceof Error ? error.message : String(error))
}

/** Starts the FTP door; closed (its sessions and uploads broken off) with `scope`. */
export const startFtpDoor = (options: FtpDoorOptions, logins: DoorLogins, grace: LoginGrace, run: Run) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const signals = ["SIGTERM", "SIGINT", "SIGQUIT"] as const
    const before = signals.map((signal) => new Set(process.listeners(signal)))
    const server = new FtpSrv({
      url: `ftp://${options.host}:${options.port}`,
      pasv_url: passiveAddress(options),
      pasv_min: options.passivePorts.min,
      pasv_max: options.passivePorts.max,
      anonymous: false,
      greeting: "Tributary: log in with your partner id and password",
      blacklist: ["PORT", "EPRT", "SITE"],
      log: silentLog
    })
    // ftp-srv exits the process on SIGTERM/SIGINT/SIGQUIT; the platform shuts down on its own terms.
    signals.forEach((signal, i) => {
      for (const listener of process.listeners(signal)) {
        if (!before[i]!.has(listener)) process.off(signal, listener as () => void)
      }
    })
    const control = (server as unknown as { readonly server: import("node:net").Server }).server
    control.maxConnections = options.maxConnections
    const loggedIn = grace.watch(control)

    const partners = new Map<string, string>()
    server.on("login", ({ connection, username, password }, resolve, reject) => {
      run(logins.password(connection.ip, username, password)).then((result) => {
        if (result._tag === "Refused") return reject(new Error(result.reason))
        partners.set(connection.id, result.partner)
        loggedIn((connection as unknown as { readonly commandSocket: import("node:net").Socket }).commandSocket)
        resolve({ fs: new PartnerFolder(connection, { partner: result.partner, run, scope, maxUploadBytes: options.maxUploadBytes, pace: options.uploadPace, active: grace.active }) })
      }, () => reject(new Error("login could not be checked; try again")))
    })
    server.on("disconnect", ({ id }) => {
      const partner = partners.get(id)
      if (partner === undefined) return
      partners.delete(id)
      logins.release(partner)
    })
    server.on("client-error", () => {})

    yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => server.listen() as Promise<unknown>, catch: (cause) => cause }),
      () => Effect.promise(() => (server.close() as Promise<unknown>).catch(() => undefined))
    )
    yield* Effect.logInfo("FTP door listening", { host: options.host, port: options.port, passivePorts: options.passivePorts })
  })
