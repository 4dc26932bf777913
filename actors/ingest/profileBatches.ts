/**
 * Translated lines become user profile commands: the records of one batch of lines grouped by
 * profile, one `Apply` per profile with its records in line order, each record carrying its source
 * (partner, job, digest, line) and the partner's default TTL when it has none. Pure.
 *
 * The command id names the job, the batch's line range and the profile, so a batch sent again (a
 * retry, or a job resumed from its checkpoint with the same batch size) is recognised by the profile
 * as the command it already answered (a long profile id shortened: commandIdRef).
 */
import { commandIdRef, type EntityCommand } from "../../domain/entity.ts"
import { type LoaderRecord, profileId } from "../../domain/ingest/LoaderRecord.ts"
import type { Apply, ProfileRecord } from "../../domain/ingest/profileEvents.ts"

/** The entity type of user profiles (domain/entities/userprofile.ts). */
export const profileType = "userprofile"

/** A line that produced records. */
export interface RecordsLine {
  readonly line: number
  readonly records: ReadonlyArray<LoaderRecord>
}

export interface JobSourceContext {
  readonly partner: string
  readonly jobId: string
  readonly digest: string
  /** the partner's default membership TTL, for records without one */
  readonly defaultTtlSeconds?: number | undefined
}

/** One profile's share of a batch: its command and the lines its records came from. */
export interface ProfileCommand {
  readonly command: EntityCommand
  readonly lines: ReadonlyArray<number>
  readonly records: number
}

/**
 * Records one Apply carries at most: a profile's records of a batch are split at a line past it (a line's
 * records stay together). One partner's five lines naming 10,000 segments each for one user made an Apply
 * of 50,000 records, 8 MB, which the bus could never carry: the job waited for good (found by an outside
 * attack, stop 23). At ~300 bytes a record at most, 2,000 stay under 640 KB.
 */
export const maxApplyRecords = 2_000

interface Part {
  readonly records: Array<ProfileRecord>
  readonly lines: Array<number>
}

/**
 * Groups the records of `lines` (in line order) by profile: one Apply per profile, first-seen order, or
 * several in line order for one with more than `maxApplyRecords` records (the second is `<id>#1`, …).
 */
export const profileCommands = (
  lines: ReadonlyArray<RecordsLine>,
  context: JobSourceContext,
  batch: { readonly fromLine: number; readonly toLine: number },
  maxRecords = maxApplyRecords
): ReadonlyArray<ProfileCommand> => {
  const groups = new Map<string, Array<Part>>()
  for (const { line, records } of lines) {
    for (const record of records) {
      const id = profileId(record.idKind, record.userId)
      let parts = groups.get(id)
      if (parts === undefined) groups.set(id, parts = [])
      let part = parts.at(-1)
      if (part === undefined || (part.records.length >= maxRecords && part.lines.at(-1) !== line)) {
        parts.push(part = { records: [], lines: [] })
      }
      const ttlSeconds = record.ttlSeconds ?? context.defaultTtlSeconds
      part.records.push({
        segmentId: record.segmentId,
        op: record.op,
        time: record.time,
        ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
        source: { partner: context.partner, jobId: context.jobId, digest: context.digest, line }
      })
      if (part.lines.at(-1) !== line) part.lines.push(line)
    }
  }
  return [...groups].flatMap(([entityId, parts]) =>
    parts.map((part, k) => {
      const commandId = `ingest:${context.jobId}:${batch.fromLine}-${batch.toLine}:${commandIdRef(entityId)}${k === 0 ? "" : `#${k}`}`
      return {
        command: {
          commandId,
          correlationId: context.jobId,
          entityType: profileType,
          entityId,
          // Built from records already decoded, and Apply's wire form is its type: not validated again
          // here (the profile decodes it once, when it applies it).
          action: { _tag: "Apply", records: part.records } satisfies typeof Apply.Encoded
        },
        lines: part.lines,
        records: part.records.length
      }
    }))
}
