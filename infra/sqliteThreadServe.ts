/**
 * The thread's side of a SQLite thread (infra/sqliteThread.ts): opens what it serves, then answers the
 * main thread's requests one at a time, in order, until asked to close. Loaded by Node itself in the
 * worker (vitest does not transform workers): only erasable TypeScript and `.ts` imports here and in
 * what the thread files import.
 */
import { parentPort } from "node:worker_threads"

/** Main thread → thread. */
export type ToThread<Request> = { readonly _tag: "Request"; readonly request: Request } | { readonly _tag: "Close" }

/** Thread → main thread: one `Ready` or `OpenFailed` at start, then one `Answer` per request, in order. */
export type FromThread<Answer> =
  | { readonly _tag: "Ready" }
  | { readonly _tag: "OpenFailed"; readonly cause: unknown }
  | { readonly _tag: "Answer"; readonly answer: Answer }

export interface Served<Request, Answer> {
  readonly answer: (request: Request) => Answer
  /** closes the connection (the thread exits after it) */
  readonly close: () => void
}

/** Runs in the thread: `open` throws when it cannot open (it closes what it opened first). */
export const serveSqliteThread = <Request, Answer>(open: () => Served<Request, Answer>): void => {
  const port = parentPort!
  const send = (message: FromThread<Answer>) => port.postMessage(message)
  let served: Served<Request, Answer>
  try {
    served = open()
  } catch (cause) {
    send({ _tag: "OpenFailed", cause: cause instanceof Error ? cause : new Error(String(cause)) })
    port.close() // nothing else keeps this thread alive: it exits
    return
  }
  send({ _tag: "Ready" })
  port.on("message", (message: ToThread<Request>) => {
    if (message._tag === "Close") {
      served.close()
      port.close()
      return
    }
    send({ _tag: "Answer", answer: served.answer(message.request) })
  })
}
