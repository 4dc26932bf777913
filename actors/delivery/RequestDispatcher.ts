/**
 * Hands a lane's requests to its senders in chunk order, one request per user at a time: a request is
 * handed out only once no request naming one of its users awaits an answer, and none queued after it
 * goes first, so a remove never overtakes the add it follows. Senders are spawned on demand, up to
 * `maxSenders` (the in-flight limit): a sender sends a request, then `take`s the next one, and ends
 * when none is ready. A busy lane keeps its senders (no fiber per request); an idle one holds none
 * (10,000 idle fibers per lane cost an idle destination megabytes). The dispatcher itself is plain
 * state and callbacks: a fiber, a semaphore permit and a Deferred per request cost a fast destination
 * (15,000 requests a second) more CPU than its HTTP exchange.
 */

export interface Dispatchable {
  /** the users it names: two requests naming one user never await answers together */
  readonly users: ReadonlyArray<string>
}

export interface RequestDispatcher<A extends Dispatchable> {
  /** Queues requests behind those queued before. */
  readonly add: (requests: ReadonlyArray<A>) => void
  /**
   * For a sender done with its request: the next one, once it is its turn and its users are free (they
   * are busy until `answered`); none, and the sender is counted as ended (it must end).
   */
  readonly take: () => A | undefined
  /** The request's answer came (or it was given up): its users are free for the requests behind it. */
  readonly answered: (request: A) => void
}

/** `spawn` starts a sender with its first request, once one is ready and fewer than `maxSenders` run. */
export const makeRequestDispatcher = <A extends Dispatchable>(maxSenders: number, spawn: (first: A) => void): RequestDispatcher<A> => {
  const queued: Array<A> = []
  let head = 0
  let senders = 0
  const busy = new Set<string>()
  // A sender spawned may run at once, inside `pump`, and call back into it (`answered`, `take`): the
  // nested call only asks the running one to go round again.
  let pumping = false
  let again = false

  /** The head request, its users now busy, if it is ready. */
  const ready = (): A | undefined => {
    if (head >= queued.length) return undefined
    const request = queued[head]!
    if (request.users.some((user) => busy.has(user))) return undefined
    queued[head++] = undefined as unknown as A
    for (const user of request.users) busy.add(user)
    if (head > 1_024 && head * 2 > queued.length) {
      queued.splice(0, head)
      head = 0
    }
    return request
  }

  const pump = () => {
    if (pumping) {
      again = true
      return
    }
    pumping = true
    do {
      again = false
      while (senders < maxSenders) {
        const request = ready()
        if (request === undefined) break
        senders++
        spawn(request)
      }
    } while (again)
    pumping = false
  }

  return {
    add: (requests) => {
      for (const request of requests) queued.push(request)
      pump()
    },
    take: () => {
      const request = ready()
      if (request === undefined) senders--
      return request
    },
    answered: (request) => {
      for (const user of request.users) busy.delete(user)
      pump()
    }
  }
}
