/**
 * The digest of a real-time POST: sha256 of its job id, format and body. Its records are idempotent
 * by (digest, line, segment) as a file's are, so a redelivered message changes nothing twice while
 * another POST with the same lines (another job id) is new data; and a retry under the same
 * Idempotency-Key with another body or format is told apart from an honest retry (422).
 */
import { createHash } from "node:crypto"
import type { RealtimeRecords } from "../../domain/ingest/realtimeJob.ts"

export const realtimeDigest = (message: Pick<RealtimeRecords, "jobId" | "format" | "body">): string =>
  createHash("sha256").update(`${message.jobId}\n${message.format}\n${message.body}`).digest("hex")
