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

/**
 * If the thread dies, the request in flight and every later one are answered `failed(cause)`: whether
 * the one in flight was committed is unknown, as with any failed commit.
 */
const connect = <Request, Answer>(worker: Worker, name: string, failed: (cause: Error) => Answer): SqliteThread<Request, Answer> => {
  let dead: Error | undefined
  // the senders waiting, in the order of their requests: the thread answers in that order
  const waiting: Array<(answer: Answer) => void> = []
  // settles when the thread has opened the file (Ready) or could not (OpenFailed, or it died first)
  let markOpened: () => void = () => {}
  const ready = new Promise<void>((resolve) => (markOpened = resolve))
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

  const close = Effect.andThen(Effect.promise(() => ready), Effect.callback<void>((resume) => {
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
    Effect.promise(() => ready),
    Effect.suspend(() => (dead === undefined ? Effect.void : Effect.fail(dead)))
  )

  return { request: (request) => Effect.andThen(Effect.promise(() => ready), send(request)), opened, close }
}

/**
 * Starts the thread of `file` with `workerData` (`opened` tells when it is ready); if it cannot open
 * its file, every request is answered `failed` with that cause. Stops it when the scope closes.
 */
export const startSqliteThread = <Request, Answer>(file: URL, workerData: unknown, options: { readonly name: string; readonly failed: (cause: Error) => Answer }) =>
  Effect.acquireRelease(
    Effect.sync(() => connect<Request, Answer>(new Worker(file, { workerData }), options.name, options.failed)),
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
