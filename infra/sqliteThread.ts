/**
 * The main thread's side of a SQLite thread (`node:worker_threads`) that owns a file's write
 * connection, so that the fsync of every commit (synchronous=FULL) and any wait for another process's
 * write lock (busy_timeout) block that thread, never the main thread's event loop (HTTP, NATS, timers):
 * it starts the thread, sends it one request at a time, waits for its answer without blocking, and
 * stops it. The thread's side is sqliteThreadServe.ts. The event store's writer
 * (eventstore/sqliteWriterClient.ts) and the device store's (events/deviceStoreSqlite.ts) run on it.
 *
 * Raw `node:worker_threads` rather than `effect/workers`: the exchange is one request and one answer
 * at a time, in order, so it needs no ids, no queue and no protocol of its own; `effect/workers`
 * gives a message channel to build such a protocol on (plus an Effect runtime inside the worker and
 * @effect/platform-node's runner), which is more than this and would still leave the
 * request/answer pairing and the "what if the thread dies mid-commit" handling to write here.
 */
import { Worker } from "node:worker_threads"
import { Effect, Scope } from "effect"
import type { FromThread, ToThread } from "./sqliteThreadServe.ts"

/** How long closing waits for the thread to close its connection before terminating it. */
const closeTimeout = "10 seconds"

const asError = (cause: unknown) => (cause instanceof Error ? cause : new Error(String(cause)))

export interface SqliteThread<Request, Answer> {
  /** Sends one request and waits for its answer; requests sent meanwhile are answered in order, after it. */
  readonly request: (request: Request) => Effect.Effect<Answer>
  /** Waits until the thread has opened its file; fails with why it could not. */
  readonly opened: Effect.Effect<void, Error>
  /** Asks the thread to close its connection (checkpointing the WAL) and waits for it to exit. */
  readonly close: Effect.Effect<void>
}

/** One thread: its exchange, and whether it died after opening its file (not asked to close). */
interface Connected<Request, Answer> extends SqliteThread<Request, Answer> {
  readonly crashed: () => boolean
}

/**
 * If the thread dies, the request in flight and every later one are answered `failed(cause)`: whether
 * the one in flight was committed is unknown, as with any failed commit.
 */
const connect = <Request, Answer>(worker: Worker, name: string, failed: (cause: Error) => Answer): Connected<Request, Answer> => {
  let dead: Error | undefined
  let ready = false
  let closing = false
  // the senders waiting, in the order of their requests: the thread answers in that order
  const waiting: Array<(answer: Answer) => void> = []
  // settles when the thread has opened the file (Ready) or could not (OpenFailed, or it died first)
  let markOpened: () => void = () => {}
  const opening = new Promise<void>((resolve) => (markOpened = resolve))
  const answer = (message: Answer) => {
    const resume = waiting.shift()
    // Idle, the thread does not keep the process alive; while a request is in flight it does, so a
    // program awaiting a commit does not exit under it.
    if (waiting.length === 0) worker.unref()
    resume?.(message)
  }
  const die = (cause: unknown) => {
    dead ??= asError(cause)
    markOpened()
    while (waiting.length > 0) answer(failed(dead))
  }
  worker.on("message", (message: FromThread<Answer>) => {
    if (message._tag === "Answer") return answer(message.answer)
    if (message._tag === "OpenFailed") dead ??= asError(message.cause)
    else ready = true
    markOpened()
    worker.unref() // booting, it kept the process alive (whoever opens the store awaits it); a request refs it again
  })
  worker.on("error", die)
  let exited = false
  worker.on("exit", (code) => {
    exited = true
    die(new Error(`${name} exited (code ${code})`))
  })

  const send = (request: Request) =>
    Effect.callback<Answer>((resume) => {
      if (dead !== undefined) return resume(Effect.succeed(failed(dead)))
      try {
        worker.postMessage({ _tag: "Request", request } satisfies ToThread<Request>)
      } catch (cause) {
        return resume(Effect.succeed(failed(asError(cause)))) // e.g. data that cannot be cloned: nothing was sent
      }
      waiting.push((message) => resume(Effect.succeed(message)))
      worker.ref()
    })

  const close = Effect.andThen(Effect.promise(() => opening), Effect.callback<void>((resume) => {
    closing = true
    if (exited) return resume(Effect.void)
    dead ??= new Error(`${name} closed`)
    worker.once("exit", () => resume(Effect.void))
    worker.ref()
    worker.postMessage({ _tag: "Close" } satisfies ToThread<Request>)
  })).pipe(
    Effect.timeoutOption(closeTimeout),
    Effect.andThen(Effect.promise(() => worker.terminate())),
    Effect.ignore
  )

  const opened = Effect.andThen(
    Effect.promise(() => opening),
    Effect.suspend(() => (dead === undefined ? Effect.void : Effect.fail(dead)))
  )

  return {
    request: (request) => Effect.andThen(Effect.promise(() => opening), send(request)),
    opened,
    close,
    crashed: () => ready && dead !== undefined && !closing
  }
}

/** How soon after a thread's start a crash of it may start another: a thread dying at every request is not restarted in a loop. */
const restartEveryMs = 1_000

/**
 * A thread that died after opening its file (an uncaught error in it, an answer that could not be
 * sent) is replaced by a new one at the next request: the request in flight when it died was answered
 * `failed` (committed or not, as any failed commit), the ones after it go to the new thread. Within a
 * second of the last start, requests are answered `failed` instead; a thread that could not open its
 * file is not started again.
 */
const supervise = <Request, Answer>(start: () => Connected<Request, Answer>, name: string, failed: (cause: Error) => Answer): SqliteThread<Request, Answer> => {
  let current = start()
  let startedAt = Date.now()
  let closed = false
  // looked at only when the thread died: a request to a live one goes straight to it
  const restarted = (request: Request) =>
    Effect.suspend(() => {
      if (Date.now() - startedAt < restartEveryMs) return Effect.succeed(failed(new Error(`${name} died and was restarted less than a second ago`)))
      current = start()
      startedAt = Date.now()
      return Effect.andThen(Effect.logWarning(`${name} died; a new one is started`), current.request(request))
    })
  return {
    request: (request) => (!closed && current.crashed() ? restarted(request) : current.request(request)),
    opened: Effect.suspend(() => current.opened),
    close: Effect.suspend(() => {
      closed = true
      return current.close
    })
  }
}

/**
 * Starts the thread of `file` with `workerData` (`opened` tells when it is ready); if it cannot open
 * its file, every request is answered `failed` with that cause. A thread that dies after opening is
 * started again at the next request (`supervise`). Stops it when the scope closes.
 */
export const startSqliteThread = <Request, Answer>(file: URL, workerData: unknown, options: { readonly name: string; readonly failed: (cause: Error) => Answer }) =>
  Effect.acquireRelease(
    Effect.sync(() => supervise<Request, Answer>(() => connect(new Worker(file, { workerData }), options.name, options.failed), options.name, options.failed)),
    (thread) => thread.close
  )

/**
 * As startSqliteThread, but the thread starts with the first request (a thread is ~20 MB of RSS: for
 * the work only some processes do, such as the one holding a lease or asked a query), and stops when
 * the scope closes.
 */
export const sqliteThreadOnDemand = <Request, Answer>(file: URL, workerData: unknown, options: { readonly name: string; readonly failed: (cause: Error) => Answer }) =>
  Effect.gen(function*() {
    const thread = yield* Effect.cached(startSqliteThread<Request, Answer>(file, workerData, options).pipe(Scope.provide(yield* Scope.Scope)))
    return { request: (request: Request) => Effect.flatMap(thread, (started) => started.request(request)) }
  })
