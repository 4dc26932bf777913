/**
 * A message on INGEST (`ingest.<partner>`, Nats-Msg-Id = the job id): work for the partner's
 * TranslatorActor. A file's job only names the job (its upload is in Uploads, its state in
 * IngestJobs, which a restarted translator also scans); a real-time POST carries its body, since the
 * POST is answered once JetStream stored it.
 */
import { Schema } from "effect"
import { JobSource } from "./Job.ts"

export const IngestMessage = Schema.Union([
  Schema.TaggedStruct("FileJob", { jobId: Schema.String, partner: Schema.String }),
  Schema.TaggedStruct("RealtimeRecords", {
    jobId: Schema.String,
    partner: Schema.String,
    source: JobSource,
    /** the body as posted (UTF-8): the partner's format, or loader-format JSON Lines */
    format: Schema.Literals(["partner", "loader"]),
    body: Schema.String,
    receivedAt: Schema.String
  })
])
export type IngestMessage = typeof IngestMessage.Type
