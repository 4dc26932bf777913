/**
 * The ingestion part of `make demo`: two partners with different formats — "acme-data" (CSV with a
 * header, mobile ad ids, a `|` list of segments, an A/D operation column, epoch times) sending a file
 * over HTTP with the CLI's own upload code, and "crm-bank" (TSV without a header, hashed emails, one
 * column per segment, RFC 3339 times, a default TTL) sending one over SFTP with its password — then a
 * short real-time stream. It prints the job reports, segment sizes and one profile explained down to
 * the partner file lines its segments came from.
 */
import { createReadStream, writeFileSync } from "node:fs"
import { createHash } from "node:crypto"
import { join } from "node:path"
import { Effect, Schema } from "effect"
import { Client } from "ssh2"
import { Job } from "../domain/ingest/Job.ts"
import { callJson, type ApiTarget } from "./cli/client.ts"
import { followJob } from "./cli/follow.ts"
import { jobReport } from "./cli/report.ts"
import { uploadFile } from "./cli/upload.ts"

const acmeSegments = { auto: "1001", travel: "1002", sports: "1003", finance: "1004" }
const acme = {
  name: "ACME Data",
  defaultTtlSeconds: 30 * 86_400,
  segmentMap: acmeSegments,
  formatSpec: {
    format: "delimited", header: true, userId: "maid", idKind: "maid",
    segments: { kind: "list", column: "segments", separator: "|" },
    op: { column: "action", values: { A: "add", D: "remove" } },
    time: { column: "ts", format: "epoch_seconds" },
    mode: "incremental"
  }
}
const crmSegments = { GOLD: "2001", LOAN: "2002", SAVER: "2003" }
const crm = {
  name: "CRM Bank",
  defaultTtlSeconds: 90 * 86_400,
  segmentMap: crmSegments,
  formatSpec: {
    format: "delimited", delimiter: "\t", header: false, columnCount: 5, userId: 1, idKind: "email_sha256",
    segments: { kind: "columns", columns: [{ column: 2, code: "GOLD" }, { column: 3, code: "LOAN" }, { column: 4, code: "SAVER" }] },
    time: { column: 5, format: "rfc3339" },
    mode: "incremental"
  }
}

/** A mobile ad id per user; some lines write it in upper case (one person, one profile). */
const maidOf = (u: number) => {
  const hex = createHash("sha256").update(`maid ${u}`).digest("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}
const emailOf = (u: number) => createHash("sha256").update(`customer${u}@example.com`).digest("hex")

/** acme-data's file: 5,000 lines for 4,000 users (the first 1,000 twice), a few malformed. */
const acmeFile = (now: number) => {
  const codes = Object.keys(acmeSegments)
  const lines = ["maid,segments,action,ts"]
  for (let i = 0; i < 5_000; i++) {
    const u = i % 4_000
    const maid = i % 7 === 0 ? maidOf(u).toUpperCase() : maidOf(u)
    const segments = i % 997 === 0 ? "auto|crypto" : `${codes[u % 4]}|${codes[(u + i) % 4 === u % 4 ? (u + 1) % 4 : (u + i) % 4]}`
    const action = i >= 4_000 && i % 5 === 0 ? "D" : "A"
    lines.push(i % 1_231 === 0 ? `not-a-maid-${i},auto,A,${now}` : `${maid},${segments},${action},${now - 3_600 + i}`)
  }
  return lines
}

/** crm-bank's file: 2,000 customers, their memberships as 0/1 columns, a couple of malformed lines. */
const crmFile = (now: number) =>
  Array.from({ length: 2_000 }, (_, u) => {
    const email = u % 3 === 0 ? emailOf(u).toUpperCase() : emailOf(u)
    const time = new Date((now - 86_400) * 1000).toISOString()
    const gold = u % 2
    const loan = u % 5 === 0 ? 1 : 0
    // every customer is in at least one segment (a line of zeros says nothing, and is rejected)
    const saver = u % 3 === 0 || gold + loan === 0 ? 1 : 0
    return u % 701 === 0 ? `${email}\t1\t0` : `${email}\t${gold}\t${loan}\t${saver}\t${time}`
  })

const Accepted = Schema.Struct({ jobId: Schema.String })
const Jobs = Schema.Struct({ jobs: Schema.Array(Job) })
const Segment = Schema.Struct({ segmentId: Schema.String, members: Schema.Number })
const Source = Schema.Struct({ partner: Schema.String, jobId: Schema.String, line: Schema.Number })
const Profile = Schema.Struct({
  idKind: Schema.String,
  userId: Schema.String,
  revision: Schema.Number,
  segments: Schema.Array(Schema.Struct({ segmentId: Schema.String, addedAt: Schema.String, expiresAt: Schema.optionalKey(Schema.String), sources: Schema.optionalKey(Schema.Array(Source)) }))
})

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Uploads a file over SFTP as the partner, streamed (ssh2's client). */
const sftpUpload = (port: number, partner: string, password: string, file: string, remote: string) =>
  new Promise<void>((resolve, reject) => {
    const conn = new Client()
    conn.on("error", reject)
    conn.on("ready", () =>
      conn.sftp((error, sftp) => {
        if (error) return reject(error)
        const out = sftp.createWriteStream(remote)
        out.on("error", reject)
        out.on("close", () => {
          conn.end()
          resolve()
        })
        createReadStream(file).pipe(out)
      }))
    conn.connect({ host: "127.0.0.1", port, username: partner, password })
  })

/** Polls until `f` answers something, for at most `ms`. */
const until = async <A>(f: () => Promise<A | undefined>, ms: number, what: string): Promise<A> => {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await f().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`demo: ${what} not within ${ms / 1000} s`)
    await sleep(200)
  }
}

export interface IngestDemoOptions {
  readonly baseUrl: string
  readonly adminKey: string
  readonly sftpPort: number
  /** where the partners' files are written */
  readonly dir: string
}

/** Runs the ingestion workload and returns its summary (printed by api/demo.ts). */
export const ingestWorkload = async (options: IngestDemoOptions): Promise<string> => {
  const admin: ApiTarget = { url: options.baseUrl, key: options.adminKey }
  const call = <A>(method: string, path: string, schema: Schema.Decoder<A>, body?: unknown) => run(callJson(admin, method, path, schema, body))
  const now = Math.floor(Date.now() / 1000)
  await call("PUT", "/v1/entities/partner/acme-data", Schema.Unknown, acme)
  await call("PUT", "/v1/entities/partner/crm-bank", Schema.Unknown, crm)
  const Secret = Schema.Struct({ secret: Schema.String })
  const acmeKey = (await call("POST", "/v1/admin/keys", Secret, { name: "acme-data uploads", role: "partner:acme-data" })).secret
  const crmPassword = "crm-bank-demo-password-42"
  await call("PUT", "/v1/admin/partners/crm-bank/credentials", Schema.Unknown, { password: crmPassword })

  // acme-data over HTTP, with the CLI's upload code; crm-bank over SFTP, at the same time
  const acmeLines = acmeFile(now)
  const acmePath = join(options.dir, "acme-data.csv")
  writeFileSync(acmePath, `${acmeLines.join("\n")}\n`)
  const crmLines = crmFile(now)
  const crmPath = join(options.dir, "crm-bank.tsv")
  writeFileSync(crmPath, `${crmLines.join("\n")}\n`)
  const acmeApi = { url: options.baseUrl, key: acmeKey }
  const acmeJob = run(uploadFile(acmeApi, { partner: "acme-data", file: acmePath, format: "partner" }).pipe(
    Effect.flatMap((accepted) => followJob(acmeApi, accepted.jobId))
  ))
  const crmJob = (async () => {
    await sftpUpload(options.sftpPort, "crm-bank", crmPassword, crmPath, "/crm-bank-2026-11.tsv")
    const listed = await until(async () => (await call("GET", "/v1/ingest/crm-bank/jobs", Jobs)).jobs.find((j) => j.source === "sftp"), 60_000, "crm-bank's SFTP job")
    return run(followJob(admin, listed.id))
  })()

  // a short real-time stream meanwhile: 20 records, one every 100 ms, loader format
  const watched = 42
  const realtime: Array<{ jobId: string; ms: number }> = []
  for (let n = 0; n < 20; n++) {
    const user = n === 0 ? maidOf(watched).toUpperCase() : maidOf(10_000 + n)
    const record = { idKind: "maid", userId: user, segmentId: acmeSegments.finance, op: "add", time: new Date().toISOString(), ttlSeconds: 7 * 86_400 }
    const started = performance.now()
    const response = await fetch(`${options.baseUrl}/v1/ingest/acme-data/records?format=loader`, {
      method: "POST",
      headers: { authorization: `Bearer ${acmeKey}`, "content-type": "application/x-ndjson", "idempotency-key": `demo-rt-${n}` },
      body: `${JSON.stringify(record)}\n`
    })
    const body = await response.text()
    if (response.status !== 202) throw new Error(`demo: real-time POST → ${response.status} ${body}`)
    realtime.push({ jobId: Schema.decodeUnknownSync(Schema.fromJsonString(Accepted))(body).jobId, ms: performance.now() - started })
    await sleep(100)
  }
  const [acmeDone, crmDone] = await Promise.all([acmeJob, crmJob])
  const realtimeJobs = await Promise.all(realtime.map((r) => run(followJob(admin, r.jobId))))

  // segment sizes, once the read model has caught up (it follows the event store)
  const segmentIds = [...Object.entries(acmeSegments), ...Object.entries(crmSegments)]
  let sizes: Array<string> = []
  await until(async () => {
    const now = await Promise.all(segmentIds.map(async ([code, id]) => {
      const segment = await call("GET", `/v1/segments/${id}`, Segment).catch(() => ({ segmentId: id, members: 0 }))
      return `${id} (${code}) ${segment.members}`
    }))
    const stable = now.join() === sizes.join()
    sizes = now
    return stable && !now.every((s) => s.endsWith(" 0")) ? true : undefined
  }, 60_000, "the segments read model")

  // one profile, explained down to the partner file lines
  const profile = await until(() => call("GET", `/v1/profiles/maid/${maidOf(watched)}?explain=true`, Profile).then((p) => p.segments.some((s) => s.segmentId === acmeSegments.finance) ? p : undefined), 30_000, "the watched profile")
  const jobFiles = new Map<string, ReadonlyArray<string>>([[acmeDone.id, acmeLines]])
  const explained = profile.segments.flatMap((s) => [
    `    segment ${s.segmentId}  added ${s.addedAt}${s.expiresAt ? `  expires ${s.expiresAt}` : ""}`,
    ...(s.sources ?? []).map((src) => {
      const text = jobFiles.get(src.jobId)?.[src.line - 1]
      return `      ← ${src.partner} job ${src.jobId} line ${src.line}${text === undefined ? " (a real-time record)" : `: ${text}`}`
    })
  ])
  const realtimeCommitted = realtimeJobs.filter((j) => j.state === "done").length
  const indent = (text: string) => text.split("\n").map((l) => `    ${l}`).join("\n")
  return `
  ingestion
    partners     acme-data (CSV over HTTP, the CLI's upload), crm-bank (TSV over SFTP, port ${options.sftpPort}), real-time records (JSON Lines)
${indent(jobReport(acmeDone))}
${indent(jobReport(crmDone))}
    real-time    ${realtime.length} POSTs → 202 (p50 ${[...realtime].sort((a, b) => a.ms - b.ms)[Math.floor(realtime.length / 2)]!.ms.toFixed(1)} ms), ${realtimeCommitted} jobs done
    segments     ${sizes.join(" · ")} members
    profile      maid ${profile.userId}, revision ${profile.revision}, explained (GET /v1/profiles/maid/${profile.userId}?explain=true):
${explained.join("\n")}
    CLI          npx tributary upload acme-data ${acmePath} --url ${options.baseUrl} --key <acme-data's key>
`
}
