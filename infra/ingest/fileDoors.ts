/**
 * The file doors, FTP and SFTP, served by one process at a time: the holder of the lease
 * `job.file-doors` (they listen on fixed ports, which two processes on one machine cannot share, and
 * one place keeps the login limits). The others wait and take over within a lease's time to live
 * when the holder stops or dies; a holder that loses the lease closes both servers at once, breaking
 * off the uploads in flight (they make no job). A door that cannot start (its port taken) is retried.
 */
import { Effect, FiberSet, Layer, Schedule } from "effect"
import { ed25519KeyPair } from "./sshPublicKey.ts"
import type { UploadPace } from "../../domain/uploadPace.ts"
import type { Intake } from "../../domain/ingest/Intake.ts"
import type { IngestJobs } from "../../domain/ingest/Job.ts"
import type { PartnerCredentials } from "../../domain/ingest/PartnerCredentials.ts"
import { withLease } from "../nats/lease.ts"
import type { Nats } from "../nats/Nats.ts"
import { type LoginFailures, makeDoorLogins } from "./doorLogins.ts"
import { type FtpDoorOptions, startFtpDoor } from "./ftpServer.ts"
import { type LoginGraceOptions, makeLoginGrace } from "./loginGrace.ts"
import { type SftpDoorOptions, startSftpDoor } from "./sftpServer.ts"
import { keptFile } from "../keptFile.ts"

export interface FileDoorsOptions {
  /** none: no FTP door */
  readonly ftp?: Omit<FtpDoorOptions, "maxConnections" | "maxUploadBytes" | "uploadPace"> | undefined
  /** none: no SFTP door */
  readonly sftp?: Omit<SftpDoorOptions, "maxConnections" | "maxUploadBytes" | "uploadPace"> | undefined
  /** failed logins per remote address, both doors together */
  readonly loginFailures: LoginFailures
  /** how long a failed login waits for its answer; default 1 s */
  readonly failureDelayMillis?: number
  /** logged-in sessions at most, both doors together (each door takes twice as many connections: room for logins) */
  readonly maxSessions: number
  readonly maxSessionsPerPartner: number
  /** largest upload; larger ones are refused and leave nothing */
  readonly maxUploadBytes?: number | undefined
  /** how slowly an upload may come (the HTTP door's UPLOAD_IDLE_TIMEOUT and UPLOAD_MIN_BYTES_PER_SECOND); none: no bound */
  readonly uploadPace?: UploadPace | undefined
  /** connections that have not logged in yet: how long they may wait, how many per address (loginGrace.ts) */
  readonly loginGrace?: LoginGraceOptions | undefined
  /** why a partner may not log in now (paused, deleted), or undefined; default: every partner with credentials may */
  readonly partnerRefusal?: ((partner: string) => Effect.Effect<string | undefined>) | undefined
}

/** The lease the doors are served under. */
export const fileDoorsLease = "file-doors"

type Services = Intake | IngestJobs | PartnerCredentials

/** Both doors, until interrupted (then closed, their uploads broken off). */
export const serveFileDoors = (options: FileDoorsOptions): Effect.Effect<never, unknown, Services> =>
  Effect.gen(function*() {
    const logins = makeDoorLogins({
      failures: options.loginFailures,
      failureDelayMillis: options.failureDelayMillis ?? 1_000,
      maxSessions: options.maxSessions,
      maxSessionsPerPartner: options.maxSessionsPerPartner,
      refusal: options.partnerRefusal
    })
    // Every callback of the servers runs here, and is interrupted when the doors close.
    const run = yield* FiberSet.makeRuntimePromise<Services>()
    const grace = makeLoginGrace(options.loginGrace)
    const limits = { maxConnections: options.maxSessions * 2, maxUploadBytes: options.maxUploadBytes, uploadPace: options.uploadPace }
    if (options.ftp !== undefined) {
      const ports = options.ftp.passivePorts.max - options.ftp.passivePorts.min + 1
      // a session holds one passive port at a time: fewer ports than sessions, and a few partners' sessions hold them all
      if (ports < options.maxSessions) {
        yield* Effect.logWarning("FTP_PASSIVE_PORTS has fewer ports than FILE_DOORS_MAX_SESSIONS: sessions holding a passive port each can take them all", { ports, maxSessions: options.maxSessions })
      }
      yield* startFtpDoor({ ...options.ftp, ...limits }, logins, grace, run)
    }
    if (options.sftp !== undefined) yield* startSftpDoor({ ...options.sftp, ...limits }, logins, grace, run)
    return yield* Effect.never
  }).pipe(Effect.scoped)

/** The doors in the background while the layer lives, in whichever process holds their lease. */
export const layerFileDoors = (options: FileDoorsOptions): Layer.Layer<never, never, Services | Nats> =>
  options.ftp === undefined && options.sftp === undefined
    ? Layer.empty
    : Layer.effectDiscard(Effect.forkScoped(withLease(fileDoorsLease, serveFileDoors(options)).pipe(
      Effect.tapError((error) => Effect.logError("file doors failed; trying again", error)),
      Effect.retry(Schedule.spaced("5 seconds"))
    )))

/**
 * The SFTP host key: the file's, generated once (ed25519, 0600) when it does not exist yet, so every
 * restart and every process on this DATA_DIR shows clients the same host key.
 */
export const sftpHostKey = (file: string): string => keptFile(file, () => ed25519KeyPair().private)
