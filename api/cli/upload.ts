/**
 * A partner file sent to `POST /v1/ingest/{partner}/files`, streamed from disk: the file is never read
 * whole into memory, and the socket takes it only as fast as the server reads it (backpressure), so
 * the bytes counted for progress are bytes handed to the connection. The server may answer before the
 * end (403, 413, …): the answer wins and sending stops.
 */
import { createReadStream } from "node:fs"
import { stat } from "node:fs/promises"
import { request as httpRequest } from "node:http"
import { request as httpsRequest } from "node:https"
import { basename } from "node:path"
import { Effect, Schema } from "effect"
import type { UploadFormat } from "../../domain/ingest/Intake.ts"
import { Job } from "../../domain/ingest/Job.ts"
import { apiProblem, ApiUnavailable, type ApiTarget } from "./client.ts"

/** The 202 answer: the job of the stored file. */
export const UploadAccepted = Schema.Struct({ jobId: Schema.String, job: Schema.optionalKey(Job) })
export type UploadAccepted = typeof UploadAccepted.Type

export interface UploadInput {
  readonly partner: string
  readonly file: string
  readonly format: UploadFormat
  /** called as bytes are handed to the connection, at most every chunk (256 KiB) */
  readonly onProgress?: (sent: number, total: number) => void
}

const chunkBytes = 256 * 1024

/** The content type a file's name says (the server sniffs gzip from its bytes in any case). */
export const contentTypeOf = (file: string, format: UploadFormat): string =>
  /\.gz$/i.test(file) ? "application/gzip" : format === "loader" ? "application/x-ndjson" : "application/octet-stream"

/** The route, with the format and the file's name as the server records them. */
export const uploadPath = (partner: string, file: string, format: UploadFormat) =>
  `/v1/ingest/${encodeURIComponent(partner)}/files?${new URLSearchParams({ format, fileName: basename(file) })}`

interface RawAnswer {
  readonly status: number
  readonly text: string
  readonly retryAfter: string | undefined
}

const send = (target: ApiTarget, path: string, input: UploadInput, total: number) =>
  Effect.callback<RawAnswer, ApiUnavailable>((resume, signal) => {
    const url = new URL(`${target.url}${path}`)
    const file = createReadStream(input.file, { highWaterMark: chunkBytes })
    const request = (url.protocol === "https:" ? httpsRequest : httpRequest)(url, {
      method: "POST",
      signal,
      headers: {
        authorization: `Bearer ${target.key}`,
        "content-type": contentTypeOf(input.file, input.format),
        "content-length": String(total)
      }
    })
    let answered = false
    let sent = 0
    const fail = (cause: unknown) => {
      if (answered) return
      answered = true
      file.destroy()
      resume(Effect.fail(new ApiUnavailable({ operation: `POST ${url.origin}${url.pathname}`, cause })))
    }
    request.on("response", (response) => {
      // an early answer (403, 413, …) ends the upload: stop reading the file
      file.unpipe(request)
      file.destroy()
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("error", fail)
      response.on("end", () => {
        if (answered) return
        answered = true
        const retryAfter = response.headers["retry-after"]
        resume(Effect.succeed({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8"), retryAfter: typeof retryAfter === "string" ? retryAfter : undefined }))
      })
    })
    // after an early answer the server closes the connection; the write error that follows is not the answer
    request.on("error", (cause) => setTimeout(() => fail(cause), 100))
    file.on("error", fail)
    file.on("data", (chunk) => {
      sent += chunk.length
      input.onProgress?.(sent, total)
    })
    file.pipe(request)
  })

/** Streams the file; its job's id (and the job) once the server stored and fsynced it. */
export const uploadFile = (target: ApiTarget, input: UploadInput) =>
  Effect.gen(function*() {
    const path = uploadPath(input.partner, input.file, input.format)
    const info = yield* Effect.tryPromise({
      try: () => stat(input.file),
      catch: (cause) => new ApiUnavailable({ operation: `read ${input.file}`, cause })
    })
    if (!info.isFile()) return yield* new ApiUnavailable({ operation: `read ${input.file}`, cause: new Error("not a regular file") })
    input.onProgress?.(0, info.size)
    const answer = yield* send(target, path, input, info.size)
    if (answer.status !== 202 && answer.status !== 200) return yield* apiProblem("POST", path, answer.status, answer.text, answer.retryAfter)
    return yield* Schema.decodeUnknownEffect(Schema.fromJsonString(UploadAccepted))(answer.text).pipe(
      Effect.mapError((cause) => new ApiUnavailable({ operation: `POST ${path}: unexpected answer`, cause }))
    )
  })
