/**
 * Full replacement files (`formatSpec.mode: "replace"`, the seed's "remodeling"): once such a file is
 * loaded, the partner's memberships in the segments the file names that the file does not list —
 * per (segment, profile) — are removed. The removals are records of the job like the file's own
 * (source line 0: the file as a whole; time: when it was received), so a later record of the partner
 * is not undone and a replayed removal changes nothing; they are not lines and do not enter the
 * job's line and record counts. The file's own records are dated at least then too (datedAtLeast).
 *
 * What the partner holds comes from ReplaceIndex: every job of a replace-mode partner records what
 * it committed there, and a replacement file what it lists and the segments it names: those of what it
 * lists, and a column layout's every column once a line of the file was accepted (an empty or wholly
 * rejected file names nothing, so it removes nothing).
 */
import { Effect } from "effect"
import type { Duration } from "effect"
import type { CommandOutcome } from "../../domain/CommandBus.ts"
import { commandIdRef, type EntityCommand } from "../../domain/entity.ts"
import { type Membership, type MembershipChange, ReplaceIndex, type UnlistedPage } from "../../domain/ingest/ReplaceIndex.ts"
import { Apply, type ProfileRecord } from "../../domain/ingest/profileEvents.ts"
import { Schema } from "effect"
import { maxApplyRecords, type ProfileCommand, profileType, type RecordsLine } from "./profileBatches.ts"
import { sendAll } from "./sendCommands.ts"
import type { Translation } from "./Translate.ts"

const encodeApply = Schema.encodeSync(Apply)

/**
 * The segments a replacement file in `translation`'s layout names whoever it lists: every column's of a
 * column layout (a segment left 0 on every line is the partner's empty list of it, not one it says
 * nothing of), none of another.
 */
export const namedByLayout = (translation: Translation): ReadonlyArray<string> => {
  if (translation.format !== "partner") return []
  const { formatSpec, segmentMap } = translation.partner
  return formatSpec.segments.kind === "columns" ? formatSpec.segments.columns.flatMap(({ code }) => segmentMap[code] ?? []) : []
}

/**
 * A replacement file's records dated at least when it was received: the file is the partner's lists as
 * of then, newer than the removals of the replacements before it. Dated by their own (older) time, a
 * user a replacement had removed and the next one listed again stayed out: its add was older than the
 * removal. Their TTLs count from then too.
 */
export const datedAtLeast = (lines: ReadonlyArray<RecordsLine>, receivedAt: string): ReadonlyArray<RecordsLine> => {
  const received = Date.parse(receivedAt)
  const older = (time: string) => Date.parse(time) < received
  return lines.map((line) => {
    const records = line.records.map((r) => (older(r.time) ? { ...r, time: receivedAt } : r))
    return records.every((r, i) => r === line.records[i]) ? line : { ...line, records }
  })
}

/** The lines' records not dated before their segment's last replacement (`notBefore`, epoch ms); lines left without any go. */
export const notStale = (lines: ReadonlyArray<RecordsLine>, notBefore: ReadonlyMap<string, number>): ReadonlyArray<RecordsLine> =>
  lines.flatMap((line) => {
    const records = line.records.filter((r) => Date.parse(r.time) >= (notBefore.get(r.segmentId) ?? -Infinity))
    return records.length === line.records.length ? [line] : records.length === 0 ? [] : [{ ...line, records }]
  })

/** Of a segment's records in one command, the one that decides it (see `decides`). */
export interface SegmentChange {
  readonly present: boolean
  /** the record's `time`, in epoch milliseconds */
  readonly time: number
}

/**
 * Whether `next` (a later record) decides a membership over `current`: the newer by time, as the profile
 * applies them; at the same time an add (the profile takes the later line, so its membership is at most
 * what this says: a replacement removes it again, which changes nothing).
 */
const decides = (next: SegmentChange, current: SegmentChange | undefined) =>
  current === undefined || next.time > current.time || (next.time === current.time && next.present)

/**
 * Each segment a profile command's records touch, with the record that decides it: not the last in line
 * order (a file's add of 10:00 after its remove of 11:00 leaves the membership removed). Worked out for a
 * replace-mode partner's jobs only, from the command's own records.
 */
export const segmentChanges = (command: ProfileCommand): ReadonlyMap<string, SegmentChange> => {
  const changes = new Map<string, SegmentChange>()
  for (const record of (command.command.action as typeof Apply.Encoded).records) {
    const change = { present: record.op === "add", time: Date.parse(record.time) }
    if (decides(change, changes.get(record.segmentId))) changes.set(record.segmentId, change)
  }
  return changes
}

/** The (segment, profile) pairs a batch's commands name (`changes[i]`: `segmentChanges(commands[i])`). */
export const listedBy = (commands: ReadonlyArray<ProfileCommand>, changes: ReadonlyArray<ReadonlyMap<string, SegmentChange>>): ReadonlyArray<Membership> =>
  commands.flatMap((c, i) => [...changes[i]!.keys()].map((segmentId) => ({ segmentId, profileId: c.command.entityId })))

/** What the accepted commands of a batch change: each segment's deciding record (the index keeps the newest). */
export const committedBy = (
  commands: ReadonlyArray<ProfileCommand>,
  changes: ReadonlyArray<ReadonlyMap<string, SegmentChange>>,
  replies: ReadonlyArray<CommandOutcome>
): ReadonlyArray<MembershipChange> =>
  commands.flatMap((c, i) =>
    replies[i]?._tag !== "Accepted" ? [] : [...changes[i]!].map(([segmentId, { present, time }]) => ({ segmentId, profileId: c.command.entityId, present, time })))

export interface Replacement {
  readonly partner: string
  readonly jobId: string
  readonly digest: string
  /** when the file was received: the removals' time */
  readonly time: string
  readonly pageSize: number
  readonly timeout: Duration.Input
}

/** Removes what the job's file does not list, a page at a time; answers how many memberships were removed. */
export const removeUnlisted = (replacement: Replacement) =>
  Effect.gen(function*() {
    const index = yield* ReplaceIndex
    const { partner, jobId } = replacement
    let after: Membership | undefined = undefined
    do {
      const page: UnlistedPage = yield* index.unlisted(partner, jobId, { after, scan: replacement.pageSize })
      after = page.next
      if (page.unlisted.length > 0) yield* remove(replacement, page.unlisted)
    } while (after !== undefined)
    // counted with the removals, so a run resumed after a crash among them counts those before it too
    return yield* index.removedBy(jobId)
  })

/** Removes `page`'s memberships as records of the replacement, counting those accepted. */
const remove = (replacement: Replacement, page: ReadonlyArray<Membership>) =>
  Effect.gen(function*() {
    const index = yield* ReplaceIndex
    const { partner, jobId } = replacement
    const byProfile = new Map<string, Array<ProfileRecord>>()
    for (const { segmentId, profileId } of page) {
      const records = byProfile.get(profileId) ?? []
      records.push({ segmentId, op: "remove", time: replacement.time, source: { partner, jobId, digest: replacement.digest, line: 0 } })
      byProfile.set(profileId, records)
    }
    // At most maxApplyRecords a command, as the translator's (one event names at most that many: a page
    // of 10,000 removals for one user was one event of 2.5 MB; stop 23's fourth outside attack)
    const parts = [...byProfile].flatMap(([entityId, records]) =>
      Array.from({ length: Math.ceil(records.length / maxApplyRecords) }, (_, k) => ({ entityId, records: records.slice(k * maxApplyRecords, (k + 1) * maxApplyRecords) })))
    const commands = parts.map(({ entityId, records }): EntityCommand => ({
      commandId: `ingest:${jobId}:replace:${commandIdRef(entityId)}:${records[0]!.segmentId}`,
      correlationId: jobId,
      entityType: profileType,
      entityId,
      action: encodeApply({ _tag: "Apply", records }) as EntityCommand["action"]
    }))
    const replies = yield* sendAll(jobId, commands, replacement.timeout)
    // Accepted is not applied: a membership the partner added after the file was received stays (it is
    // newer), and the index, keeping the newest change, keeps it listed for the next replacement.
    const time = Date.parse(replacement.time)
    const gone = parts.flatMap(({ entityId, records }, i) =>
      replies[i]?._tag !== "Accepted" ? [] : records.map((r) => ({ segmentId: r.segmentId, profileId: entityId, present: false, time })))
    yield* index.removed(partner, jobId, gone)
  })
