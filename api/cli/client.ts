/**
 * The little HTTP client the CLI and the demo share: where the API is and which key to send, its
 * problem+json answers as a typed error, and a job read by id. Every answer is decoded by its schema.
 */
import { Effect, Schema } from "effect"
import { Job } from "../../domain/ingest/Job.ts"

/** Where the API is and the key to use. */
export interface ApiTarget {
  /** e.g. `http://127.0.0.1:8080` */
  readonly url: string
  readonly key: string
}

/** An RFC 9457 answer, as much of it as the CLI shows. */
export const Problem = Schema.Struct({
  status: Schema.optionalKey(Schema.Number),
  code: Schema.optionalKey(Schema.String),
  title: Schema.optionalKey(Schema.String),
  detail: Schema.optionalKey(Schema.String),
  errors: Schema.optionalKey(Schema.Array(Schema.Struct({
    in: Schema.optionalKey(Schema.String),
    pointer: Schema.optionalKey(Schema.String),
    message: Schema.optionalKey(Schema.String)
  })))
})

/** The API answered an error status (its problem+json, when it sent one). */
export class ApiProblem extends Schema.TaggedError<ApiProblem>()("ApiProblem", {
  status: Schema.Number,
  method: Schema.String,
  path: Schema.String,
  problem: Schema.optionalKey(Problem),
  /** the body as text when it was not problem+json */
  text: Schema.String,
  retryAfter: Schema.optionalKey(Schema.String)
}) {
  /** One line for a person: status, title and detail, and the fields it names. */
  get summary(): string {
    const p = this.problem
    const fields = (p?.errors ?? []).map((e) => `${e.in ?? ""} ${e.pointer ?? ""}: ${e.message ?? ""}`.trim())
    const head = `${this.method} ${this.path} → ${this.status}${p?.code ? ` ${p.code}` : ""}`
    const detail = p?.detail ?? p?.title ?? this.text.slice(0, 500)
    return [`${head}: ${detail}`, ...fields.map((f) => `  ${f}`), ...(this.retryAfter ? [`  retry after ${this.retryAfter} s`] : [])].join("\n")
  }
}

/** The API could not be reached, or answered something that is not what its contract says. */
export class ApiUnavailable extends Schema.TaggedError<ApiUnavailable>()("ApiUnavailable", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  get summary(): string {
    const cause = this.cause as { message?: string; cause?: { message?: string } } | undefined
    return `${this.operation}: ${cause?.cause?.message ?? cause?.message ?? String(this.cause)}`
  }
}

export type ApiError = ApiProblem | ApiUnavailable

const decodeProblem = Schema.decodeUnknownOption(Schema.fromJsonString(Problem))

/** An error answer as ApiProblem. */
export const apiProblem = (method: string, path: string, status: number, text: string, retryAfter: string | null | undefined) => {
  const problem = decodeProblem(text)
  return new ApiProblem({
    status,
    method,
    path,
    text,
    ...(problem._tag === "Some" ? { problem: problem.value } : {}),
    ...(retryAfter ? { retryAfter } : {})
  })
}

/** A JSON call; a 2xx answer decoded by `schema`, anything else an ApiProblem. */
export const callJson = <A>(target: ApiTarget, method: string, path: string, schema: Schema.Decoder<A>, body?: unknown): Effect.Effect<A, ApiError> =>
  Effect.gen(function*() {
    const response = yield* Effect.tryPromise({
      try: (signal) => fetch(`${target.url}${path}`, {
        method,
        signal,
        headers: { authorization: `Bearer ${target.key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      }).then(async (r) => ({ status: r.status, text: await r.text(), retryAfter: r.headers.get("retry-after") })),
      catch: (cause) => new ApiUnavailable({ operation: `${method} ${target.url}${path}`, cause })
    })
    if (response.status < 200 || response.status > 299) return yield* apiProblem(method, path, response.status, response.text, response.retryAfter)
    return yield* Schema.decodeUnknownEffect(Schema.fromJsonString(schema))(response.text).pipe(
      Effect.mapError((cause) => new ApiUnavailable({ operation: `${method} ${path}: unexpected answer`, cause }))
    )
  })

/** GET /v1/ingest/jobs/{id} */
export const getJob = (target: ApiTarget, jobId: string) =>
  callJson(target, "GET", `/v1/ingest/jobs/${encodeURIComponent(jobId)}`, Job)
