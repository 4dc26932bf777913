/**
 * Closed-loop HTTP load from a worker thread, so the client's CPU is not taken from the server's
 * event loop: `concurrency` clients over keep-alive connections (node:http) each send the next
 * request as soon as their previous one is answered, until `requests` are all sent.
 */
import { Agent, request } from "node:http"
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads"
import { closedLoop } from "./stats.ts"

export interface HttpRequestSpec {
  readonly method: string
  readonly path: string
  readonly body?: unknown
}

export interface HttpLoadSpec {
  readonly origin: string
  readonly concurrency: number
  readonly headers: Record<string, string>
  readonly requests: ReadonlyArray<HttpRequestSpec>
}

export interface HttpLoadResult {
  readonly seconds: number
  readonly latencyMs: Array<number>
  readonly errors: number
  readonly firstError?: string
  /** responses per status code */
  readonly statuses: Record<string, number>
}

const runLoad = async (spec: HttpLoadSpec): Promise<HttpLoadResult> => {
  const url = new URL(spec.origin)
  const agent = new Agent({ keepAlive: true, maxSockets: spec.concurrency })
  const statuses: Record<string, number> = {}
  const send = (req: HttpRequestSpec) =>
    new Promise<void>((resolve, reject) => {
      const body = req.body === undefined ? undefined : JSON.stringify(req.body)
      const r = request({
        agent,
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: req.path,
        headers: {
          ...spec.headers,
          ...(body === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
        }
      }, (res) => {
        const status = res.statusCode ?? 0
        statuses[status] = (statuses[status] ?? 0) + 1
        const chunks: Array<Buffer> = []
        res.on("data", (chunk: Buffer) => chunks.push(chunk))
        res.on("end", () =>
          status >= 200 && status < 300
            ? resolve()
            : reject(new Error(`${req.method} ${req.path}: ${status} ${Buffer.concat(chunks).toString().slice(0, 300)}`)))
        res.on("error", reject)
      })
      r.on("error", reject)
      r.end(body)
    })
  const run = await closedLoop(spec.requests.length, spec.concurrency, (i) => send(spec.requests[i]!))
  agent.destroy()
  return {
    seconds: run.seconds,
    latencyMs: run.latencyMs,
    errors: run.errors,
    statuses,
    ...(run.firstError === undefined ? {} : { firstError: String(run.firstError) })
  }
}

/** Runs the load in a fresh worker thread and resolves with its measurements. */
export const httpLoad = (spec: HttpLoadSpec): Promise<HttpLoadResult> =>
  new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { httpLoad: spec } })
    worker.once("message", (result: HttpLoadResult) => {
      resolve(result)
      void worker.terminate()
    })
    worker.once("error", reject)
    worker.once("exit", (code) => {
      if (code !== 0) reject(new Error(`http load worker exited with ${code}`))
    })
  })

if (!isMainThread && (workerData as { httpLoad?: HttpLoadSpec } | null)?.httpLoad !== undefined) {
  parentPort!.postMessage(await runLoad((workerData as { httpLoad: HttpLoadSpec }).httpLoad))
}
