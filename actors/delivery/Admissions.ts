/**
 * The requests of a lane waiting to start, in the order they asked, behind one timer per lane armed
 * for when the first may start. With a timer per waiting sender, a lane at its limit woke all its
 * senders at the same instant (they all waited for the same request to leave the window): one
 * started, the others slept again, some sixteen wake-ups for each request started. Here a request
 * starts at once when none waits and the lane admits it, else in turn; one that is no longer `live`
 * (its sender interrupted) is passed over.
 */

interface Waiter {
  readonly start: () => void
  readonly live: () => boolean
}

export interface Admissions {
  /** Calls `start` once the lane admits the request: at once, or after those waiting before it. */
  readonly enter: (start: () => void, live: () => boolean) => void
  /** Stops the timer (the lane ends). */
  readonly close: () => void
}

/**
 * The longest wait a timer can hold: Node fires a longer one after 1 ms. A longer wait is taken in
 * steps (admission asks again, and is told to wait the rest).
 */
export const longestTimerMs = 2 ** 31 - 1

/**
 * `admit` counts a request as started and answers 0, or answers how long until one may start (ms, > 0);
 * `now` is the lane's clock.
 */
export const makeAdmissions = (admit: (nowMs: number) => number, now: () => number): Admissions => {
  const waiting: Array<Waiter | undefined> = []
  let head = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  let closed = false

  const shift = (): Waiter => {
    const first = waiting[head]!
    waiting[head++] = undefined
    if (head === waiting.length) {
      waiting.length = 0
      head = 0
    } else if (head > 1_024 && head * 2 > waiting.length) {
      waiting.splice(0, head)
      head = 0
    }
    return first
  }

  const arm = (waitMs: number) => {
    if (!closed) timer = setTimeout(run, Math.min(waitMs, longestTimerMs))
  }

  function run() {
    timer = undefined
    while (head < waiting.length) {
      if (!waiting[head]!.live()) {
        shift()
        continue
      }
      const waitMs = admit(now())
      if (waitMs > 0) return arm(waitMs)
      shift().start()
    }
  }

  return {
    enter: (start, live) => {
      if (head < waiting.length || timer !== undefined) {
        waiting.push({ start, live })
        return
      }
      const waitMs = admit(now())
      if (waitMs === 0) return start()
      waiting.push({ start, live })
      arm(waitMs)
    },
    close: () => {
      closed = true
      clearTimeout(timer)
    }
  }
}
