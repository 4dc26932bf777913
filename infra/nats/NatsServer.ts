/**
 * The embedded message bus: a `nats-server` child process started from `nats.conf`, ready once it
 * accepts connections and stopped (SIGTERM, then SIGKILL after a grace period) when its scope closes.
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { createConnection, createServer } from "node:net"
import { fileURLToPath } from "node:url"
import { Duration, Effect, Option, Schedule, Schema } from "effect"
import { pidNamespace } from "../pidNamespace.ts"

/** The repository's `nats.conf`. */
export const defaultConfigFile: string = fileURLToPath(new URL("../../nats.conf", import.meta.url))

/** The users `nats.conf` declares; their passwords are given at start (the config reads them from the environment). */
export const NatsUsers = { platform: "platform", reader: "reader" } as const

export interface NatsCredentials {
  readonly user: string
  readonly password: string
}

export interface NatsServerOptions {
  readonly configFile: string
  /** passwords of the users in nats.conf (`platform`, `reader`) */
  readonly passwords: { readonly platform: string; readonly reader: string }
  /** default 127.0.0.1 (the config's own default too) */
  readonly host?: string
  readonly port: number
  /** JetStream's directory (`-sd`), e.g. `<DATA_DIR>/nats` */
  readonly storeDir: string
  /** executable; default `nats-server` on the PATH */
  readonly command?: string
  /** how long to wait for "Server is ready"; default 15 seconds */
  readonly startTimeout?: Duration.Input
  /** how long SIGTERM may take before SIGKILL; default 10 seconds */
  readonly stopGracePeriod?: Duration.Input
  /**
   * The server writes its pid here (`-P`), and who started it beside it (`ServerOwner`). A server left
   * running by a process of this PID namespace that died without stopping it (SIGKILL, a crash) is
   * found through this file and stopped before the new one starts.
   */
  readonly pidFile?: string
}

export interface RunningNatsServer {
  readonly url: string
  readonly pid: number
}

/** The server did not start: it exited, could not be spawned, or was not ready in time. `output` is its log. */
export class NatsServerError extends Schema.TaggedError<NatsServerError>()("NatsServerError", {
  operation: Schema.String,
  output: Schema.String,
  cause: Schema.Defect()
}) {}

/**
 * The server's whole environment: PATH and the passwords nats.conf reads, nothing else. It must not
 * inherit ours (ADMIN_API_KEY, cloud credentials): anyone who may read /proc/<pid>/environ of a
 * long-lived detached process would read them there.
 */
export const serverEnvironment = (passwords: NatsServerOptions["passwords"]): Record<string, string> => ({
  ...(process.env.PATH === undefined ? {} : { PATH: process.env.PATH }),
  // nats-server parses a variable's value as a config value ("7e3…" would be a number): quote it.
  TRIBUTARY_NATS_PASSWORD: JSON.stringify(passwords.platform),
  TRIBUTARY_NATS_READER_PASSWORD: JSON.stringify(passwords.reader)
})

/** The last `max` characters of the server's log, enough to show why it failed. */
export const tail = (log: Array<string>, max = 8_000) => log.join("").slice(-max)

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** Resolves when the child exits (at once if it already has). */
const waitForExit = (child: ChildProcess) =>
  Effect.callback<void>((resume) => {
    if (exited(child)) return resume(Effect.void)
    const onExit = () => resume(Effect.void)
    child.once("exit", onExit)
    return Effect.sync(() => child.off("exit", onExit))
  })

/** SIGTERM, and SIGKILL if it has not exited within the grace period. */
const stop = (child: ChildProcess, grace: Duration.Input) =>
  Effect.gen(function*() {
    if (exited(child)) return
    child.kill("SIGTERM")
    const stopped = yield* waitForExit(child).pipe(Effect.timeoutOption(grace))
    if (stopped._tag === "None") {
      child.kill("SIGKILL")
      yield* waitForExit(child)
    }
  })

/** Whether `pid` is a nats-server on `storeDir` (so a recycled pid or another server is never touched). */
export const isNatsServerOn = (pid: number, storeDir: string) => {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")
    return args.some((arg) => arg.endsWith("nats-server")) && args.includes(storeDir)
  } catch {
    return false // gone, or no /proc to ask
  }
}

export const signal = (pid: number, name: NodeJS.Signals) => {
  try {
    process.kill(pid, name)
  } catch {
    // it exited meanwhile
  }
}

/** The pid a server wrote to `pidFile`, if any. */
export const readPidFile = (pidFile: string): Option.Option<number> => {
  const pid = Number(existsSync(pidFile) ? readFileSync(pidFile, "utf8").trim() : NaN)
  return Number.isSafeInteger(pid) ? Option.some(pid) : Option.none()
}

/**
 * Who started the server named by a pid file: the PID namespace of that pid (see pidNamespace.ts;
 * empty where it could not be read) and the address the server listens on. Kept beside the pid file
 * (`nats-server.owner` for `nats-server.pid`), written before the server starts.
 */
const ServerOwner = Schema.Struct({ pidNamespace: Schema.String, host: Schema.String, port: Schema.Int })
export type ServerOwner = typeof ServerOwner.Type
const OwnerJson = Schema.fromJsonString(ServerOwner)

const ownerFileOf = (pidFile: string) => pidFile.replace(/(\.pid)?$/, ".owner")

/** Records that this process starts the server of `pidFile`, listening on `host`:`port`. */
export const writeServerOwner = (pidFile: string, address: { readonly host: string; readonly port: number }) =>
  Effect.try({
    try: () => writeFileSync(ownerFileOf(pidFile), Schema.encodeSync(OwnerJson)({ pidNamespace: pidNamespace ?? "", ...address })),
    catch: (cause) => new NatsServerError({ operation: "write its owner", output: "", cause })
  })

/** Who started the server of `pidFile`; None when no valid record is there (an earlier version wrote none). */
export const readServerOwner = (pidFile: string): Option.Option<ServerOwner> => {
  try {
    return Schema.decodeUnknownOption(OwnerJson)(readFileSync(ownerFileOf(pidFile), "utf8"))
  } catch {
    return Option.none()
  }
}

/**
 * The pid in `pidFile` when it names a process of this PID namespace: its server was started here, or
 * (no record: an earlier version's) /proc shows it running on `storeDir`. Only such a pid may be looked
 * up or signalled: another namespace's names some other process here, or none.
 */
export const readOwnPidFile = (pidFile: string, storeDir: string): Option.Option<number> =>
  Option.filter(readPidFile(pidFile), (pid) =>
    Option.match(readServerOwner(pidFile), {
      onNone: () => isNatsServerOn(pid, storeDir),
      onSome: (owner) => owner.pidNamespace === pidNamespace
    }))

/**
 * Stops the nats-server `pid` if it is one on `storeDir` (a recycled pid, or another server, is never
 * signalled): SIGTERM, and SIGKILL after `grace`; returns once it is gone.
 */
export const stopNatsServerOn = (pid: number, storeDir: string, grace: Duration.Input) =>
  Effect.gen(function*() {
    if (!isNatsServerOn(pid, storeDir)) return
    const gone = Effect.suspend(() => isNatsServerOn(pid, storeDir) ? Effect.fail("running" as const) : Effect.void).pipe(
      Effect.retry(Schedule.spaced("50 millis"))
    )
    signal(pid, "SIGTERM")
    yield* gone.pipe(
      Effect.timeoutOrElse({ duration: grace, orElse: () => Effect.sync(() => signal(pid, "SIGKILL")).pipe(Effect.andThen(gone)) }),
      Effect.ignore // the retries end only once the process is gone
    )
  })

/**
 * Stops the server a dead predecessor left on this store (named by `pidFile`): the new one could
 * not bind its port, nor share the JetStream directory. Only one started in this PID namespace.
 */
export const stopLeftover = (pidFile: string, storeDir: string, grace: Duration.Input) =>
  Effect.gen(function*() {
    const pid = readOwnPidFile(pidFile, storeDir)
    if (Option.isNone(pid) || !isNatsServerOn(pid.value, storeDir)) return
    yield* Effect.logWarning("stopping a nats-server left running by an earlier process", { pid: pid.value, pidFile })
    yield* stopNatsServerOn(pid.value, storeDir, grace)
  })

/** Waits for the server's "Server is ready" log line; fails if it exits first. */
const waitForReady = (child: ChildProcess, log: Array<string>, spawnError: { cause?: Error }) =>
  Effect.callback<void, NatsServerError>((resume) => {
    if (spawnError.cause !== undefined) {
      return resume(Effect.fail(new NatsServerError({ operation: "spawn", output: tail(log), cause: spawnError.cause })))
    }
    let seen = ""
    const onData = (chunk: Buffer) => {
      // keep a little of the previous chunk: the line may be split across two reads
      seen = (seen + chunk.toString()).slice(-4_096)
      if (seen.includes("Server is ready")) resume(Effect.void)
    }
    const onExit = (code: number | null, signal: string | null) =>
      resume(Effect.fail(new NatsServerError({
        operation: "start",
        output: tail(log),
        cause: `nats-server exited before it was ready (code ${code}, signal ${signal})`
      })))
    const onError = (cause: Error) =>
      resume(Effect.fail(new NatsServerError({ operation: "spawn", output: tail(log), cause })))
    child.stderr?.on("data", onData)
    child.once("exit", onExit)
    child.once("error", onError)
    return Effect.sync(() => {
      child.stderr?.off("data", onData)
      child.off("exit", onExit)
      child.off("error", onError)
    })
  })

/** Connects once over TCP: the listener really accepts (the log line alone could be stale output). */
export const probe = (host: string, port: number) =>
  Effect.callback<void, Error>((resume) => {
    const socket = createConnection({ host, port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.void)
    })
    socket.once("error", (cause) => {
      socket.destroy()
      resume(Effect.fail(cause))
    })
    return Effect.sync(() => socket.destroy())
  })

/**
 * Starts nats-server and waits until it accepts connections; stops it when the scope closes.
 * Fails with `NatsServerError` carrying the server's log when it cannot start.
 */
export const startNatsServer = Effect.fnUntraced(function*(options: NatsServerOptions) {
  const host = options.host ?? "127.0.0.1"
  const args = ["-c", options.configFile, "-a", host, "-p", String(options.port), "-sd", options.storeDir]
  if (options.pidFile !== undefined) {
    yield* stopLeftover(options.pidFile, options.storeDir, options.stopGracePeriod ?? "10 seconds")
    yield* writeServerOwner(options.pidFile, { host, port: options.port })
    args.push("-P", options.pidFile)
  }
  const log: Array<string> = []
  const spawnError: { cause?: Error } = {}
  const child = yield* Effect.acquireRelease(
    Effect.try({
      try: () => {
        const child = spawn(options.command ?? "nats-server", args, { stdio: ["ignore", "pipe", "pipe"], env: serverEnvironment(options.passwords) })
        // nats-server logs to stderr; keep all of it (bounded) to explain a failed start.
        const keep = (chunk: Buffer) => {
          log.push(chunk.toString())
          if (log.length > 200) log.splice(0, log.length - 200)
        }
        child.stdout?.on("data", keep)
        child.stderr?.on("data", keep)
        // without a listener, a spawn failure (ENOENT) would be thrown as an uncaught 'error' event
        child.on("error", (cause) => {
          spawnError.cause = cause
        })
        return child
      },
      catch: (cause) => new NatsServerError({ operation: "spawn", output: "", cause })
    }),
    (child) => stop(child, options.stopGracePeriod ?? "10 seconds")
  )
  const startTimeout = options.startTimeout ?? "15 seconds"
  yield* waitForReady(child, log, spawnError).pipe(
    Effect.andThen(probe(host, options.port).pipe(
      Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 50 }))),
      Effect.mapError((cause) => new NatsServerError({ operation: "probe", output: tail(log), cause }))
    )),
    Effect.timeoutOrElse({
      duration: startTimeout,
      orElse: () =>
        Effect.fail(new NatsServerError({
          operation: "start",
          output: tail(log),
          cause: `not ready within ${Duration.format(Duration.fromInputUnsafe(startTimeout))}`
        }))
    })
  )
  return { url: `nats://${host}:${options.port}`, pid: child.pid! } satisfies RunningNatsServer
})

/** The kernel's range for outgoing connections' local ports (Linux; the usual default elsewhere). */
const ephemeralPorts = (): readonly [number, number] => {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number)
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!]
  } catch {
    // not Linux
  }
  return [32768, 60999]
}

/** Binds `port` on `host` and lets it go: the port, or null when it is taken. */
const tryPort = (host: string, port: number) =>
  Effect.callback<number | null, NatsServerError>((resume) => {
    const server = createServer()
    server.once("error", (cause: NodeJS.ErrnoException) =>
      resume(
        cause.code === "EADDRINUSE" || cause.code === "EACCES"
          ? Effect.succeed(null)
          : Effect.fail(new NatsServerError({ operation: "freePort", output: "", cause }))
      ))
    server.listen(port, host, () => {
      const address = server.address()
      const bound = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resume(Effect.succeed(bound)))
    })
  })

/**
 * A TCP port free right now on `host`, picked at random below the kernel's ephemeral range: the OS
 * hands ports of that range to every outgoing connection, so a port taken from it (`listen(0)`) could
 * become some connection's local port before the server binds it (seen in CI: `listen EADDRINUSE`).
 * Another process could still take it; a start failing with "address already in use" is then retried
 * by the caller. Falls back to a port the OS picks when no range lies below.
 */
export const freePort = (host = "127.0.0.1") =>
  Effect.gen(function*() {
    const [low] = ephemeralPorts()
    const from = 10_000
    for (let attempt = 0; low - from >= 1_000 && attempt < 50; attempt++) {
      const port = yield* tryPort(host, from + Math.floor(Math.random() * (low - from)))
      if (port !== null) return port
    }
    const port = yield* tryPort(host, 0)
    if (port === null) return yield* new NatsServerError({ operation: "freePort", output: "", cause: "no free port" })
    return port
  })
