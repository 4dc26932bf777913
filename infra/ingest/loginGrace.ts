/**
 * Connections at a file door that have not logged in yet. Each is closed unless it logs in within the
 * grace time, and one address holds at most a few at once (more are closed as they come), so idle
 * sockets cannot take the slots partners log in with. (Before, found by the outside attack of stop 17:
 * 64 TCP connections to each door that never said a word held every slot, with no end, and a partner
 * with the right password was turned away.) Shared by both doors: FTP and SFTP together per address.
 */
import type { Server, Socket } from "node:net"
export interface LoginGraceOptions {
  /** how long a connection may stay without logging in; default 30 s */
  readonly graceMillis?: number | undefined
  /** connections not logged in yet, per remote address; default 8 */
  readonly perAddress?: number | undefined
  /**
   * how long a logged-in session may stay without a byte either way (commands, answers, an upload's
   * data) before it is closed, breaking off what it had open; default 5 minutes. Before (stop 20), a
   * session never timed out: each partner's 4 idle sessions held their slots and passive ports for good.
   */
  readonly idleMillis?: number | undefined
}

/** What the door tells about one admitted connection. */
interface Waiting {
  /** it logged in: no more grace time, no longer counted */
  readonly loggedIn: () => void
  /** it closed (logged in or not) */
  readonly closed: () => void
}

export const makeLoginGrace = (options: LoginGraceOptions = {}) => {
  const graceMillis = options.graceMillis ?? 30_000
  const perAddress = options.perAddress ?? 8
  const idleMillis = options.idleMillis ?? 300_000
  const waiting = new Map<string, number>()

  /** A new connection from `address`, closed by `close`: undefined (and closed) when its address has too many waiting. */
  const admit = (address: string, close: () => void): Waiting | undefined => {
    const now = waiting.get(address) ?? 0
    if (now >= perAddress) {
      close()
      return undefined
    }
    waiting.set(address, now + 1)
    let counted = true
    const leave = () => {
      if (!counted) return
      counted = false
      clearTimeout(timer)
      const left = (waiting.get(address) ?? 1) - 1
      if (left <= 0) waiting.delete(address)
      else waiting.set(address, left)
    }
    const timer = setTimeout(() => {
      leave()
      close()
    }, graceMillis)
    timer.unref()
    return { loggedIn: leave, closed: leave }
  }

  /**
   * Puts every connection `server` accepts under the grace, from its TCP connection on (ssh2 sees one
   * only once its client sent its version line, which an idle one never does). Answers what the door
   * calls with a connection's socket once its client logged in.
   */
  const watch = (server: Server) => {
    const waiting = new WeakMap<Socket, Waiting>()
    server.on("connection", (socket: Socket) => {
      const admitted = admit(socket.remoteAddress ?? "", () => socket.destroy())
      if (admitted === undefined) return
      waiting.set(socket, admitted)
      socket.once("close", admitted.closed)
    })
    return (socket: Socket | undefined) => {
      if (socket === undefined) return
      waiting.get(socket)?.loggedIn()
      // the session's idle bound from now on: Node counts both directions on the socket
      socket.setTimeout(idleMillis)
      socket.once("timeout", () => socket.destroy())
    }
  }

  /** Where a session's traffic runs on another socket (an FTP data connection), its control socket's idle time starts again (at most once a second). */
  const rearmedAt = new WeakMap<Socket, number>()
  const active = (socket: Socket) => {
    const now = Date.now()
    if (socket.timeout === undefined || now - (rearmedAt.get(socket) ?? 0) < 1_000) return
    rearmedAt.set(socket, now)
    socket.setTimeout(idleMillis)
  }

  return { watch, active }
}

export type LoginGrace = ReturnType<typeof makeLoginGrace>
