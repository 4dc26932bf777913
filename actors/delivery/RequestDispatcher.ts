/**
 * Hands a lane's requests to its senders in chunk order, one request per user at a time: a request is
 * handed out only once no request naming one of its users awaits an answer, and none queued after it
 * goes first, so a remove never overtakes the add it follows. A sender is a long-lived fiber, one per
 * in-flight slot, that asks for the `next` request once it is free; the dispatcher itself is plain
 * state and callbacks. A fiber, a semaphore permit and a Deferred per request cost a fast destination
 * (15,000 requests a second) more CPU than its HTTP exchange.
 */
import { Effect } from "effect"

export interface Dispatchable {
  /** the users it names: two requests naming one user never await answers together */
  readonly users: ReadonlyArray<string>
}

export interface RequestDispatcher<A extends Dispatchable> {
  /** Queues requests behind those queued before. */
  readonly add: (requests: ReadonlyArray<A>) => void
  /** The next request, once it is its turn and its users are free; they are busy until `answered`. */
  readonly next: Effect.Effect<A>
  /** The request's answer came (or it was given up): its users are free for the requests behind it. */
  readonly answered: (request: A) => void
}

export const makeRequestDispatcher = <A extends Dispatchable>(): RequestDispatcher<A> => {
  const queued: Array<A> = []
  let head = 0
  const idle: Array<(request: A) => void> = []
  const busy = new Set<string>()
  // A sender handed a request runs at once, inside `pump`, and may call back into it (`answered`,
  // `next`): the nested call only asks the running one to go round again.
  let pumping = false
  let again = false

  const pump = () => {
    if (pumping) {
      again = true
      return
    }
    pumping = true
    do {
      again = false
      while (head < queued.length && idle.length > 0) {
        const request = queued[head]!
        if (request.users.some((user) => busy.has(user))) break
        queued[head++] = undefined as unknown as A
        for (const user of request.users) busy.add(user)
        idle.pop()!(request)
      }
      if (head > 1_024 && head * 2 > queued.length) {
        queued.splice(0, head)
        head = 0
      }
    } while (again)
    pumping = false
  }

  return {
    add: (requests) => {
      for (const request of requests) queued.push(request)
      pump()
    },
    next: Effect.callback<A>((resume) => {
      const take = (request: A) => resume(Effect.succeed(request))
      idle.push(take)
      pump()
      return Effect.sync(() => {
        const at = idle.indexOf(take)
        if (at >= 0) idle.splice(at, 1)
      })
    }),
    answered: (request) => {
      for (const user of request.users) busy.delete(user)
      pump()
    }
  }
}
