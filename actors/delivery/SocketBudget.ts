/**
 * The connections this process's deliverers hold for requests awaiting answers, bounded as a whole
 * (issue 9 item 5, bulkheads). A request on the wire holds a connection of its own (one request per
 * connection), and a destination may have thousands in flight: before, found by an outside attack, a
 * slow partner's 1,200 pending requests took every file descriptor of a process limited to 1,024, and
 * another destination's requests failed to connect (EMFILE) and were retried until one freed.
 *
 * So a request takes a socket before it goes and gives it back with its answer. Each lane is sure of
 * its first `floor` sockets (held in reserve for it while it holds fewer); beyond them it takes only
 * what leaves every other lane's reserve and `spare` sockets for lanes yet to start. A lane refused
 * waits for a socket to come back (its admissions ask again a few milliseconds later): a slow partner
 * then waits on its own requests, not on the others'.
 *
 * Idle kept-alive connections are not counted: a lane's pool keeps at most as many as it had requests
 * out at once, for its keep-alive time (30 s).
 */
import { readFileSync } from "node:fs"
import { Context } from "effect"

/** A lane's account with the budget. */
export interface LaneSockets {
  /** Takes a socket for a request about to go: false when the lane may not have one more now. */
  readonly take: () => boolean
  /** Gives back the socket of a request answered (or given up). */
  readonly give: () => void
  /** The lane ends: its reserve goes back (what it still holds is given back by its requests). */
  readonly leave: () => void
}

export interface SocketBudget {
  /** sockets at most, all lanes together */
  readonly limit: number
  /** sockets held now */
  readonly inUse: () => number
  /** A lane's account, sure of `floor` sockets. */
  readonly join: (floor: number) => LaneSockets
}

/** A lane is sure of this many sockets (or its in-flight limit, when lower). */
export const laneFloor = 8

/** `limit` sockets at most; `spare` of them kept for lanes yet to start. */
export const makeSocketBudget = (limit: number, spare = Math.min(64, Math.floor(limit / 8))): SocketBudget => {
  let inUse = 0
  /** Σ over lanes of what is left of each one's floor */
  let reserved = 0
  return {
    limit,
    inUse: () => inUse,
    join: (floor) => {
      let held = 0
      let left = false
      const owed = () => left ? 0 : Math.max(0, floor - held)
      reserved += owed()
      return {
        take: () => {
          if (inUse >= limit) return false
          const mine = owed()
          if (mine === 0 && inUse + 1 + (reserved - mine) + spare > limit) return false
          reserved -= mine
          held++
          inUse++
          reserved += owed()
          return true
        },
        give: () => {
          if (held === 0) return
          const mine = owed()
          held--
          inUse--
          reserved += owed() - mine
        },
        leave: () => {
          reserved -= owed()
          left = true
        }
      }
    }
  }
}

/** The soft limit on open files of this process (Linux: /proc/self/limits), if it can be read. */
const openFilesLimit = (): number | undefined => {
  try {
    const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"))
    const soft = Number(line?.slice("Max open files".length).trim().split(/\s+/)[0])
    return Number.isFinite(soft) && soft > 0 ? soft : undefined
  } catch {
    return undefined
  }
}

/**
 * The default budget: half the process's open-file limit (the other half for incoming HTTP, NATS,
 * SQLite and idle kept-alive connections), at least 64, at most 65,536; 4,096 when the limit is unknown.
 */
export const defaultSocketLimit = (): number => {
  const files = openFilesLimit()
  return files === undefined ? 4_096 : Math.max(64, Math.min(65_536, Math.floor(files / 2)))
}

/** The process's budget (`DELIVERY_MAX_SOCKETS`, default `defaultSocketLimit`), shared by its deliverers. */
export const DeliverySockets = Context.Reference<SocketBudget>("tributary/DeliverySockets", {
  defaultValue: () => makeSocketBudget(defaultSocketLimit())
})
