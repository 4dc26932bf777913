/**
 * The embedded message bus shared by every platform process on one DATA_DIR. The first process
 * starts nats-server detached (its own process group, logging to a file, not to a pipe of ours), so
 * that it outlives that process; the next ones find it through the pid file and join it. A server
 * named by the pid file that no longer answers is replaced.
 *
 * Each process using it leaves a file named by its pid in `<DATA_DIR>/nats-server.users/`; the
 * last one to leave (no other file names a running process) stops the server, so a SIGKILLed
 * process leaves it running for the others and for its own restart. Joining, starting, leaving and
 * stopping happen under one lock file, so a process starting while the last one stops either
 * joins before the stop decision or starts a new server after it.
 *
 * While a process uses the server it supervises it (NatsSupervision): a server that died is
 * restarted on the same port and store by one of the processes, under the same lock.
 *
 * Processes on one DATA_DIR may be in different PID namespaces (containers sharing a volume, one started
 * under `unshare --pid`), where a pid names another process or none. So every pid written down carries
 * its namespace, and only a pid of this process's own is looked up or signalled: a server started in
 * another namespace runs as long as it accepts connections on its port (recorded beside the pid file),
 * and is never stopped from here; the lock of a holder there is waited for.
 */
import { spawn } from "node:child_process"
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Duration, Effect, Option, Schedule } from "effect"
import type { Scope } from "effect"
import { isGone, pidNamespace } from "../pidNamespace.ts"
import {
  isNatsServerOn,
  NatsServerError,
  type NatsServerOptions,
  probe,
  readOwnPidFile,
  readPidFile,
  readServerOwner,
  serverEnvironment,
  stopLeftover,
  stopNatsServerOn,
  writeServerOwner
} from "./NatsServer.ts"

export interface SharedNatsServerOptions extends NatsServerOptions {
  readonly pidFile: string
  /** where the server logs (`-l`): a file, since the process that starts it may be gone long before it */
  readonly logFile: string
  /** a directory holding one file per process using the server (named by its pid) */
  readonly usersDir: string
  /** held while joining, starting, restarting, leaving or stopping */
  readonly lockFile: string
  /** how the server is watched and restarted while this process uses it */
  readonly supervision?: NatsSupervision
}

/**
 * Each process using the server checks every `checkEvery` (default 1 second) that the process the
 * pid file names still runs; when it is gone (SIGKILL, a crash, the OOM killer), one of them
 * restarts it on the same port and store, under the lock: the others find it running once they get
 * the lock, and join it. A start that fails is tried again after `restartBackoff` (default 200 ms),
 * doubling up to `restartBackoffMax` (default 10 seconds), for as long as the process runs.
 */
export interface NatsSupervision {
  readonly checkEvery?: Duration.Input
  readonly restartBackoff?: Duration.Input
  readonly restartBackoffMax?: Duration.Input
}

export interface SharedNatsServer {
  readonly url: string
  /** undefined when the server was started in another PID namespace: its pid names no process here */
  readonly pid: number | undefined
  /** whether this process started it (false: joined one already running) */
  readonly started: boolean
}

/** The value after `flag` on the running server's command line. */
const argOf = (pid: number, flag: string) => {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")
    const at = args.indexOf(flag)
    return at >= 0 ? args[at + 1] : undefined
  } catch {
    return undefined
  }
}

const logTail = (logFile: string) => {
  try {
    return readFileSync(logFile, "utf8").slice(-8_000)
  } catch {
    return ""
  }
}

/** Whether a server accepts connections at `address` (tried for about 3 seconds). */
const answers = (address: { readonly host: string; readonly port: number }) =>
  probe(address.host, address.port).pipe(
    Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 30 }))),
    Effect.as(true),
    Effect.orElseSucceed(() => false)
  )

/** Where the server listens by the record of who started it; by our configuration when an earlier version kept none. */
const ownerAddress = (options: SharedNatsServerOptions) =>
  Option.match(readServerOwner(options.pidFile), {
    onNone: () => ({ host: options.host ?? "127.0.0.1", port: options.port }),
    onSome: ({ host, port }) => ({ host, port })
  })

/**
 * The server named by the pid file, if it runs on this store and accepts connections. One started in
 * this PID namespace is looked up by its pid (/proc); one started in another only by its port: its pid
 * names another process here, or none.
 */
const running = (options: SharedNatsServerOptions) =>
  Effect.gen(function*() {
    if (Option.isNone(readPidFile(options.pidFile))) return Option.none<SharedNatsServer>()
    const pid = readOwnPidFile(options.pidFile, options.storeDir)
    if (Option.isSome(pid) && !isNatsServerOn(pid.value, options.storeDir)) return Option.none<SharedNatsServer>()
    const { host, port } = Option.match(pid, {
      onNone: () => ownerAddress(options),
      onSome: (pid) => ({ host: argOf(pid, "-a") ?? options.host ?? "127.0.0.1", port: Number(argOf(pid, "-p") ?? options.port) })
    })
    if (!(yield* answers({ host, port }))) {
      if (Option.isNone(pid)) {
        // Its PID namespace is gone (a restarted container) or its server is: a live one accepts connections.
        yield* Effect.logWarning("the nats-server on this DATA_DIR, which this process cannot look up by its pid (another PID namespace), does not answer; starting one", { host, port })
        return Option.none<SharedNatsServer>()
      }
      yield* Effect.logWarning("the nats-server on this DATA_DIR does not answer; replacing it", { pid: pid.value })
      yield* stopLeftover(options.pidFile, options.storeDir, options.stopGracePeriod ?? "10 seconds")
      return Option.none<SharedNatsServer>()
    }
    return Option.some<SharedNatsServer>({ url: `nats://${host}:${port}`, pid: Option.getOrUndefined(pid), started: false })
  })

const start = (options: SharedNatsServerOptions) =>
  Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    const args = ["-c", options.configFile, "-a", host, "-p", String(options.port), "-sd", options.storeDir, "-P", options.pidFile, "-l", options.logFile]
    yield* writeServerOwner(options.pidFile, { host, port: options.port })
    const exited: { code?: number | null; cause?: Error } = {}
    const child = yield* Effect.try({
      try: () => {
        const child = spawn(options.command ?? "nats-server", args, {
          detached: true,
          stdio: "ignore",
          env: serverEnvironment(options.passwords)
        })
        child.on("error", (cause) => void (exited.cause = cause))
        child.once("exit", (code) => void (exited.code = code))
        child.unref()
        return child
      },
      catch: (cause) => new NatsServerError({ operation: "spawn", output: "", cause })
    })
    const failed = () =>
      new NatsServerError({
        operation: "start",
        output: logTail(options.logFile),
        cause: exited.cause ?? `nats-server exited before it was ready (code ${exited.code})`
      })
    const ready = Effect.suspend((): Effect.Effect<void, NatsServerError | "not yet"> =>
      exited.cause !== undefined || exited.code !== undefined ? Effect.fail(failed()) : probe(host, options.port).pipe(Effect.mapError(() => "not yet" as const))
    ).pipe(
      Effect.retry({ while: (error) => error === "not yet", schedule: Schedule.spaced("20 millis") }),
      Effect.mapError((error) => error === "not yet" ? failed() : error)
    )
    const startTimeout = options.startTimeout ?? "15 seconds"
    yield* ready.pipe(
      Effect.timeoutOrElse({
        duration: startTimeout,
        orElse: () =>
          Effect.fail(new NatsServerError({
            operation: "start",
            output: logTail(options.logFile),
            cause: `not ready within ${Duration.format(Duration.fromInputUnsafe(startTimeout))}`
          }))
      }),
      Effect.tapError(() => Effect.sync(() => child.kill("SIGKILL")))
    )
    return {
      url: `nats://${host}:${options.port}`,
      pid: child.pid!,
      started: true
    } satisfies SharedNatsServer
  })

/**
 * This process as other processes read it from a file: `<pid>.<PID namespace>` (a bare pid where the
 * namespace cannot be read, as earlier versions wrote).
 */
const mark = pidNamespace === undefined ? String(process.pid) : `${process.pid}.${pidNamespace}`

/**
 * Whether the process a mark names is certainly gone: only one of this PID namespace can be asked. A
 * bare pid (an earlier version's) is taken as one of this namespace, as that version took it. Undefined
 * for what is no mark.
 */
const markGone = (text: string): boolean | undefined => {
  const parsed = /^(\d+)(?:\.([0-9a-f]+))?$/.exec(text)
  return parsed === null ? undefined : isGone(Number(parsed[1]), parsed[2] ?? pidNamespace)
}

/** How long a lock is held at most (a start, a stop: each bounded by its timeout); one older is stale. */
const lockHeldAtMost = 45_000

/**
 * Takes the lock file (exclusive create, holding our mark); one left by a dead process is taken over.
 * A holder in another PID namespace cannot be asked whether it lives: its lock is stale only once older
 * than any lock is held.
 */
const lock = (lockFile: string) =>
  Effect.suspend(() => {
    try {
      closeSync(openSync(lockFile, "wx"))
      writeFileSync(lockFile, mark)
      return Effect.void
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") return Effect.die(error)
      try {
        const gone = markGone(readFileSync(lockFile, "utf8").trim())
        const age = Date.now() - statSync(lockFile).mtimeMs
        // A lock just created has no mark in it yet: stale only when it stayed so for seconds (its
        // creator died between creating and writing it).
        if (gone === true || age > (gone === undefined ? 5_000 : lockHeldAtMost)) rmSync(lockFile, { force: true })
      } catch {
        // released meanwhile: try again
      }
      return Effect.fail("held" as const)
    }
  }).pipe(
    Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 1_200 }),
    Effect.orDie
  )

const withLock = <A, E, R>(lockFile: string, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(lock(lockFile), () => effect, () => Effect.sync(() => rmSync(lockFile, { force: true })))

/** The marks of the other processes that use the server: any of another PID namespace counts, since it cannot be asked. */
const otherUsers = (usersDir: string) => readdirSync(usersDir).filter((user) => user !== mark && markGone(user) === false)

/**
 * Uses the nats-server running on this store, or starts one detached, for the life of the Scope;
 * when the Scope closes and no other running process uses it, stops it.
 */
export const useSharedNatsServer = (options: SharedNatsServerOptions): Effect.Effect<SharedNatsServer, NatsServerError, Scope.Scope> =>
  Effect.tap(joinForScope(options), () => Effect.forkScoped(supervise(options)))

/**
 * Whether the server runs on this store: by its pid when it was started in this PID namespace (no
 * connection: cheap enough to ask every second), else by its port.
 */
const serverRuns = (options: SharedNatsServerOptions) =>
  Option.match(readOwnPidFile(options.pidFile, options.storeDir), {
    onNone: () => answers(ownerAddress(options)),
    onSome: (pid) => Effect.succeed(isNatsServerOn(pid, options.storeDir))
  })

/** Watches the server for the life of the Scope and restarts it when it is gone (see NatsSupervision). */
const supervise = (options: SharedNatsServerOptions) => {
  const { checkEvery = "1 second", restartBackoff = "200 millis", restartBackoffMax = "10 seconds" } = options.supervision ?? {}
  const restart = withLock(options.lockFile, joinOrStartNatsServer(options)).pipe(
    // a lock never obtained (held for minutes) is one more failed attempt, not the end of supervision
    Effect.catchDefect((defect) => Effect.fail(new NatsServerError({ operation: "lock", output: "", cause: defect }))),
    Effect.tap((server) =>
      server.started
        ? Effect.logWarning("restarted the nats-server, which had stopped", { pid: server.pid, url: server.url })
        : Effect.logInfo("another process restarted the nats-server; joined it", { pid: server.pid })),
    Effect.tapError((error) => Effect.logError("could not restart the nats-server; trying again", error)),
    Effect.retry(Schedule.min([Schedule.exponential(restartBackoff), Schedule.spaced(restartBackoffMax)]))
  )
  const check = Effect.flatMap(Effect.suspend(() => serverRuns(options)), (runs) =>
    runs
      ? Effect.void
      : Effect.logError("the nats-server on this DATA_DIR is gone; restarting it", { pidFile: options.pidFile }).pipe(Effect.andThen(restart)))
  return check.pipe(Effect.repeat(Schedule.spaced(checkEvery)), Effect.asVoid)
}

const joinForScope = (options: SharedNatsServerOptions) =>
  Effect.acquireRelease(
    withLock(options.lockFile, Effect.gen(function*() {
      mkdirSync(options.usersDir, { recursive: true })
      const server = yield* joinOrStartNatsServer(options)
      writeFileSync(join(options.usersDir, mark), "")
      return server
    })),
    (server) =>
      withLock(options.lockFile, Effect.gen(function*() {
        rmSync(join(options.usersDir, mark), { force: true })
        const others = otherUsers(options.usersDir)
        if (others.length > 0) return yield* Effect.logInfo("leaving the nats-server running for the other processes", { pid: server.pid, others })
        // The server the pid file names now: the one joined may have died and been replaced by another process.
        const current = readOwnPidFile(options.pidFile, options.storeDir)
        if (Option.isNone(current)) {
          return yield* Effect.logInfo("last process out: leaving the nats-server running, started in another PID namespace (its pid names no process here)")
        }
        yield* Effect.logInfo("last process out: stopping the nats-server", { pid: current.value })
        yield* stopNatsServerOn(current.value, options.storeDir, options.stopGracePeriod ?? "10 seconds")
      }))
  )

/**
 * Joins the nats-server running on this store, or starts one detached (under the lock, so only one
 * process starts it). Should the start fail, a server the pid file names meanwhile is joined.
 */
const joinOrStartNatsServer = (options: SharedNatsServerOptions): Effect.Effect<SharedNatsServer, NatsServerError> =>
  Effect.gen(function*() {
    const joined = yield* running(options)
    if (Option.isSome(joined)) {
      yield* Effect.logInfo("joined the nats-server already running on this DATA_DIR", { url: joined.value.url, pid: joined.value.pid })
      return joined.value
    }
    return yield* start(options).pipe(
      Effect.catch((error) =>
        Effect.flatMap(running(options), Option.match({ onNone: () => Effect.fail(error), onSome: Effect.succeed })))
    )
  })
