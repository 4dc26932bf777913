/**
 * The main thread's side of the SQLite writer thread: starts it, sends it one batch at a time and
 * waits for its answer without blocking the event loop, and stops it.
 *
 * Raw `node:worker_threads` rather than `effect/workers`: the exchange is one request and one answer
 * at a time, in order, so it needs no ids, no queue and no protocol of its own; `effect/workers`
 * gives a message channel to build such a protocol on (plus an Effect runtime inside the worker and
 * @effect/platform-node's runner), which is more than this and would still leave the
 * request/answer pairing and the "what if the thread dies mid-commit" handling to write here.
 */
import { Worker } from "node:worker_threads"
import { Effect } from "effect"
import { EventStoreError } from "../../domain/EventStore.ts"
import type { FromWriter, ToWriter, WriteRequest, WriterData } from "./sqliteWriterProtocol.ts"

type Answer = Extract<FromWriter, { readonly _tag: "Committed" | "BatchFailed" }>

const threadFile = new URL("./sqliteWriterThread.ts", import.meta.url)
/** How long closing waits for the thread to close its connection before terminating it. */
const closeTimeout = "10 seconds"

const asError = (cause: unknown) => (cause instanceof Error ? cause : new Error(String(cause)))

/**
 * `commit` sends one batch and waits for its answer; callers send the next one only after that (the
 * store's single writer fiber does). If the thread dies, the batch in flight and every later one fail:
 * whether the one in flight was committed is unknown, as with any failed commit.
 */
const connect = (worker: Worker) => {
  let dead: Error | undefined
  let waiting: ((answer: Answer) => void) | undefined
  // settles when the thread has opened the file (Ready) or could not (OpenFailed, or it died first)
  let markOpened: () => void = () => {}
  const ready = new Promise<void>((resolve) => (markOpened = resolve))
  const answer = (message: Answer) => {
    const resume = waiting
    waiting = undefined
    // Idle, the thread does not keep the process alive (as the store did before it had a thread);
    // while a commit is in flight it does, so a program awaiting an append does not exit under it.
    worker.unref()
    resume?.(message)
  }
  const die = (cause: unknown) => {
    dead ??= asError(cause)
    markOpened()
    answer({ _tag: "BatchFailed", cause: dead })
  }
  worker.on("message", (message: FromWriter) => {
    if (message._tag === "Committed" || message._tag === "BatchFailed") return answer(message)
    if (message._tag === "OpenFailed") dead ??= asError(message.cause)
    markOpened()
    worker.unref() // booting, it kept the process alive (whoever opens the store awaits it); a commit refs it again
  })
  worker.on("error", die)
  let exited = false
  worker.on("exit", (code) => {
    exited = true
    die(new Error(`the event store's writer thread exited (code ${code})`))
  })

  const send = (batch: ReadonlyArray<WriteRequest>, recordedAt: string) =>
    Effect.callback<Answer>((resume) => {
      if (dead !== undefined) return resume(Effect.succeed({ _tag: "BatchFailed", cause: dead }))
      waiting = (message) => resume(Effect.succeed(message))
      worker.ref()
      try {
        worker.postMessage({ _tag: "Commit", recordedAt, batch } satisfies ToWriter)
      } catch (cause) {
        answer({ _tag: "BatchFailed", cause }) // e.g. data that cannot be cloned: nothing was sent
      }
    })
  const commit = (batch: ReadonlyArray<WriteRequest>, recordedAt: string) =>
    Effect.andThen(Effect.promise(() => ready), send(batch, recordedAt))

  /** Asks the thread to close its connection (checkpointing the WAL) and waits for it to exit. */
  const close = Effect.andThen(Effect.promise(() => ready), Effect.callback<void>((resume) => {
    if (exited) return resume(Effect.void)
    dead ??= new Error("the event store closed")
    worker.once("exit", () => resume(Effect.void))
    worker.ref()
    worker.postMessage({ _tag: "Close" } satisfies ToWriter)
  })).pipe(
    Effect.timeoutOption(closeTimeout),
    Effect.andThen(Effect.promise(() => worker.terminate())),
    Effect.ignore
  )

  /** Waits until the thread has opened the file; fails if it could not. */
  const opened = Effect.andThen(
    Effect.promise(() => ready),
    Effect.suspend(() => (dead === undefined ? Effect.void : Effect.fail(new EventStoreError({ operation: "open", cause: dead }))))
  )

  return { commit, close, opened }
}

export type Writer = ReturnType<typeof connect>

/**
 * Starts the writer thread on `data.path` (`opened` tells when it is ready); if it cannot open the
 * file, every commit fails with that cause. Stops it when the scope closes.
 */
export const startWriter = (data: WriterData) =>
  Effect.acquireRelease(
    Effect.sync(() => connect(new Worker(threadFile, { workerData: data }))),
    (writer) => writer.close
  )
