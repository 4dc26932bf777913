/**
 * A hostile partner in a process of its own: `node hostilePartnerProcess.ts <behaviour>` answers every
 * request as `behaviour` says, over raw TCP (what no well-behaved HTTP server library would write),
 * and prints its URL on stdout once it listens. Each request it sees is printed as a line
 * `request <n>`.
 */
import { createServer, type Socket } from "node:net"

const behaviours: Record<string, (socket: Socket, head: string) => void> = {
  /** interim `102 Processing` answers every 200 ms, never a final one */
  "processing-forever": (socket) => {
    const timer = setInterval(() => socket.write("HTTP/1.1 102 Processing\r\n\r\n"), 200)
    socket.on("close", () => clearInterval(timer))
  },
  /**
   * a 401 echoing the request's `authorization` header after padding that puts its credential across
   * the 2,048th character of the answer (where the deliverer cuts it)
   */
  "echo-401-across-cut": (socket, head) => {
    const authorization = /^authorization: (.*)$/im.exec(head)?.[1] ?? ""
    const prefix = `{"error":"unauthorized","pad":"`
    const middle = `","authorization":"Bearer `
    const pad = "p".repeat(2_048 - 16 - prefix.length - middle.length)
    const body = `${prefix}${pad}${middle}${authorization.replace(/^Bearer /, "")}"}`
    socket.write(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  },
  /** an unasked-for `100 Continue`, then a 200 (RFC 9110 15.2: a client must parse 1xx answers it did not expect) */
  "continue-then-200": (socket) => {
    socket.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
  },
  /** a 200 at once, then its body a byte every 200 ms, never ending */
  "trickle-200": (socket) => {
    socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    const timer = setInterval(() => socket.write("1\r\nx\r\n"), 200)
    socket.on("close", () => clearInterval(timer))
  },
  /**
   * a 401 whose JSON body echoes the request's headers, as APIs explaining a refusal do, encoded as
   * PHP's json_encode does by default (`/` written `\/`)
   */
  "echo-401-php-json": (socket, head) => {
    const headers = Object.fromEntries(head.split("\r\n").slice(1).map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]))
    const body = JSON.stringify({ error: "unauthorized", received: headers }).replaceAll("/", "\\/")
    socket.write(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  },
  /**
   * a 400 whose body is the request's `authorization` header less its last character, repeated to
   * 26,000 characters (about what the deliverer reads of a refusal): a near-copy of the secret at every
   * place, each one failing only at its end
   */
  "echo-400-near-copies": (socket, head) => {
    const authorization = /^authorization: (.*)$/im.exec(head)?.[1] ?? ""
    const body = authorization.slice(0, -1).repeat(Math.ceil(26_000 / Math.max(1, authorization.length - 1))).slice(0, 26_000)
    socket.write(`HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  },
  /** a 200 with a 100-byte body of which 3 bytes come, then the connection reset */
  "reset-200-mid-body": (socket) => {
    socket.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    setTimeout(() => socket.resetAndDestroy(), 50)
  }
}

const behaviour = behaviours[process.argv[2] ?? ""]
if (behaviour === undefined) throw new Error(`unknown behaviour ${process.argv[2]}`)
let requests = 0
const server = createServer((socket) => {
  socket.on("error", () => undefined)
  socket.on("data", (data) => {
    // one answer per request line seen (requests are small: a request line never spans two reads)
    const text = data.toString("latin1")
    for (const match of text.matchAll(/^(?:POST|PUT) \S+ HTTP\/1\.1\r$/gm)) {
      console.log(`request ${++requests}`)
      const start = match.index
      behaviour(socket, text.slice(start, text.indexOf("\r\n\r\n", start)))
    }
  })
})
server.listen(0, "127.0.0.1", () => {
  const address = server.address()
  console.log(`http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`)
})
