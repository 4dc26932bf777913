/**
 * The job of a real-time POST, as both its door (infra/ingest/intake.ts) and its partner's translator
 * record it: the POST is published to INGEST first and its ledger row written after, so a crash
 * between the two leaves a message whose job the translator creates, the same one, from the message.
 *
 * Its body travels in the message, not in Uploads (`uploadId` is empty). Its digest is its job id:
 * records are idempotent by (digest, line, segment), so a redelivered message changes nothing twice,
 * while another POST with the same lines is new data (it renews expiries) — as a new file would be.
 */
import type { IngestMessage } from "./IngestMessage.ts"
import type { NewJob } from "./Job.ts"

export type RealtimeRecords = Extract<IngestMessage, { readonly _tag: "RealtimeRecords" }>

const utf8 = new TextEncoder()

export const realtimeJob = (message: RealtimeRecords): NewJob => ({
  id: message.jobId,
  partner: message.partner,
  source: message.source,
  uploadId: "",
  bytes: utf8.encode(message.body).byteLength,
  digest: message.jobId,
  format: message.format
})
