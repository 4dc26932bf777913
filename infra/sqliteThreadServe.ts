/**
 * The thread's side of a SQLite thread (infra/sqliteThread.ts): opens what it serves, then answers the
 * main thread's requests one at a time, in order, until asked to close. Loaded by Node itself in the
 * worker (vitest does not transform workers): only erasable TypeScript and `.ts` imports here and in
 * what the thread files import.
 */
import type { DatabaseSync } from "node:sqlite"
import { parentPort } from "node:worker_threads"

/** Main thread → thread. */
export type ToThread<Request> = { readonly _tag: "Request"; readonly request: Request } | { readonly _tag: "Close" }

/** Thread → main thread: one `Ready` or `OpenFailed` at start, then one `Answer` per request, in order. */
export type FromThread<Answer> =
  | { readonly _tag: "Ready" }
  | { readonly _tag: "OpenFailed"; readonly cause: unknown }
  | { readonly _tag: "Answer"; readonly answer: Answer }

/**
 * Runs in the thread: opens the database with `open`, then `serve` prepares what answers each request
 * (either may throw: the thread says it could not open, closing what was opened, and exits). Requests are
 * answered one at a time, in order, until `Close`, which closes the database.
 */
export const serveSqliteThread = <Request, Answer>(open: () => DatabaseSync, serve: (db: DatabaseSync) => (request: Request) => Answer): void => {
  const port = parentPort!
  const send = (message: FromThread<Answer>) => port.postMessage(message)
  let db: DatabaseSync | undefined
  let answer: (request: Request) => Answer
  try {
    db = open()
    answer = serve(db)
  } catch (cause) {
    db?.close()
    send({ _tag: "OpenFailed", cause: cause instanceof Error ? cause : new Error(String(cause)) })
    port.close() // nothing else keeps this thread alive: it exits
    return
  }
  send({ _tag: "Ready" })
  port.on("message", (message: ToThread<Request>) => {
    if (message._tag === "Close") {
      db?.close()
      port.close()
      return
    }
    send({ _tag: "Answer", answer: answer(message.request) })
  })
}
