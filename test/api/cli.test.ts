/**
 * `npx tributary`: the CLI as a process of its own (the bin file, run through its shebang on the
 * Node 24 the project installs) against the whole platform on a real nats-server, over real HTTP,
 * with real files: its output, its progress on stderr and its exit status.
 */
import { assert, describe, layer } from "@effect/vitest"
import { spawn } from "node:child_process"
import { writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { gzipSync } from "node:zlib"
import { Effect, Schema } from "effect"
import { HttpServer } from "../../api/platform.ts"
import { Job } from "../../domain/ingest/Job.ts"
import { freePort } from "../../infra/nats/NatsServer.ts"
import { createKey, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const root = fileURLToPath(new URL("../../", import.meta.url))
const bin = join(root, "api/cli/main.ts")

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs the bin as a user would after `npx` put node_modules/.bin (Node 24) first on PATH; `env` on top
 * of a clean environment (no TRIBUTARY_* of the caller's).
 */
const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.promise(() =>
    new Promise<Run>((resolve, reject) => {
      const child = spawn(bin, args, {
        cwd: root,
        env: { PATH: `${join(root, "node_modules/.bin")}:${dirname(process.execPath)}:${process.env.PATH ?? ""}`, HOME: process.env.HOME ?? "/tmp", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")))
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")))
      child.on("error", reject)
      child.on("close", (code) => resolve({ code, stdout, stderr }))
    }))

/** `n` loader-format lines, one user each, one segment each. */
const loaderLines = (n: number, prefix: string) =>
  Array.from({ length: n }, (_, i) =>
    JSON.stringify({ idKind: "cookie", userId: `${prefix}-${i}`, segmentId: String(5_000 + (i % 3)), op: "add", time: "2026-11-01T10:00:00Z" })).join("\n") + "\n"

const createPartner = (id: string) =>
  Effect.gen(function*() {
    const res = yield* request({ method: "PUT", url: `/v1/entities/partner/${id}`, body: { name: `Partner ${id}` } })
    assert.isTrue(res.statusCode === 200 || res.statusCode === 201, res.body)
    return (yield* createKey(`partner:${id}`)).secret
  })

describe("npx tributary", () => {
  layer(layerTestPlatform(), { excludeTestServices: true, timeout: "120 seconds" })("against the platform", (it) => {
    it.effect("--help lists the commands, and each command's --help its arguments and flags", () =>
      Effect.gen(function*() {
        const [top, upload, job] = yield* Effect.all([cli(["--help"]), cli(["upload", "--help"]), cli(["job", "--help"])], { concurrency: "unbounded" })
        assert.strictEqual(top.code, 0, top.stderr)
        assert.match(top.stdout, /upload/)
        assert.match(top.stdout, /job/)
        assert.strictEqual(upload.code, 0, upload.stderr)
        for (const word of ["<partner>", "<file>", "--url", "--key", "--format", "--follow", "--json"]) assert.include(upload.stdout, word)
        assert.strictEqual(job.code, 0, job.stderr)
        assert.include(job.stdout, "<jobId>")
      }), { timeout: 60_000 })

    it.effect("upload streams the file with progress, follows the job to done, prints its report and exits 0", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const key = yield* createPartner("cli-done")
        const dir = yield* tempDir("cli")
        const file = join(dir, "users.jsonl")
        writeFileSync(file, loaderLines(500, "done") + "{not json\n")
        const run = yield* cli(["upload", "cli-done", file, "--format", "loader"], { TRIBUTARY_URL: url, TRIBUTARY_API_KEY: key })
        assert.strictEqual(run.code, 0, `${run.stdout}\n${run.stderr}`)
        // progress on stderr (not a TTY: plain lines), the report on stdout
        assert.match(run.stderr, /upload \[#+\]\s+100%/)
        assert.match(run.stderr, /stored: job \S+/)
        assert.match(run.stderr, /job \S+ done/)
        assert.match(run.stdout, /state\s+done/)
        assert.match(run.stdout, /lines read\s+501/)
        assert.match(run.stdout, /records accepted\s+500/)
        assert.match(run.stdout, /lines rejected\s+1/)
        assert.match(run.stdout, /committed\s+500/)
        assert.match(run.stdout, /reconciliation .*: holds/)
        assert.match(run.stdout, /line 501: /)
        // the job it names is the platform's, done
        const jobId = /stored: job (\S+)/.exec(run.stderr)![1]!
        const shown = yield* cli(["job", jobId, "--json", "--url", url, "--key", key])
        assert.strictEqual(shown.code, 0, shown.stderr)
        const job = Schema.decodeUnknownSync(Schema.fromJsonString(Job))(shown.stdout)
        assert.strictEqual(job.state, "done")
        assert.strictEqual(job.recordsCommitted, 500)
        assert.strictEqual(job.fileName, "users.jsonl")
      }), { timeout: 90_000 })

    it.effect("a job that fails (a truncated gzip) is reported with where the input broke, exit 1", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const key = yield* createPartner("cli-failed")
        const dir = yield* tempDir("cli")
        const file = join(dir, "users.jsonl.gz")
        const whole = gzipSync(Buffer.from(loaderLines(2_000, "failed")))
        writeFileSync(file, whole.subarray(0, Math.floor(whole.length / 2)))
        const run = yield* cli(["upload", "cli-failed", file, "--format", "loader", "--url", url, "--key", key])
        assert.strictEqual(run.code, 1, `${run.stdout}\n${run.stderr}`)
        assert.match(run.stdout, /state\s+failed/)
        assert.match(run.stdout, /failure\s+\S+/)
      }), { timeout: 90_000 })

    it.effect("another partner's key is refused: the problem's status and detail on stderr, exit 2", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        yield* createPartner("cli-victim")
        const intruder = yield* createPartner("cli-intruder")
        const dir = yield* tempDir("cli")
        const file = join(dir, "users.jsonl")
        writeFileSync(file, loaderLines(10, "intruder"))
        const run = yield* cli(["upload", "cli-victim", file, "--format", "loader", "--url", url, "--key", intruder])
        assert.strictEqual(run.code, 2, `${run.stdout}\n${run.stderr}`)
        assert.match(run.stderr, /error: POST \/v1\/ingest\/cli-victim\/files\S* → 403 forbidden: \S+/)
        assert.strictEqual(run.stdout, "")
        // nothing was stored for the victim
        const jobs = yield* request({ method: "GET", url: "/v1/ingest/cli-victim/jobs" })
        assert.strictEqual(jobs.statusCode, 200, jobs.body)
        assert.lengthOf((jobs.json() as { jobs: Array<unknown> }).jobs, 0)
      }), { timeout: 60_000 })

    it.effect("a missing key, an unknown job and an unreachable API each exit 2 with a reason", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const key = yield* createPartner("cli-unknown")
        const [noKey, unknown, away] = yield* Effect.all([
          cli(["job", "nope", "--url", url]),
          cli(["job", "no-such-job", "--url", url, "--key", key]),
          cli(["job", "x", "--url", `http://127.0.0.1:${yield* freePort()}`, "--key", key])
        ], { concurrency: "unbounded" })
        assert.notStrictEqual(noKey.code, 0)
        assert.include(noKey.stdout + noKey.stderr, "--key")
        assert.strictEqual(unknown.code, 2, unknown.stderr)
        assert.match(unknown.stderr, /→ 404/)
        assert.strictEqual(away.code, 2, away.stderr)
        assert.match(away.stderr, /ECONNREFUSED/)
      }), { timeout: 120_000 })
  })
})
