/**
 * The app-event rollups on SQLite (`DATA_DIR/rollups.db`: rollupsFile.ts; what they hold:
 * projections/events/rollups.ts). Written by the rollup consumers (infra/events/rollupConsumer.ts): a
 * pulled batch of EVENTS_CLEAN or SESSIONS messages, decoded, is one transaction on the writer thread
 * (rollupsWriterThread.ts), which also sets that stream's checkpoint (its last stream sequence applied). A message at or below the checkpoint is a redelivery and changes nothing,
 * so a crash between commit and acknowledgement never counts twice. The main thread keeps a connection
 * of its own for the checkpoints and the trend alerts (infra/events/trendAlerts.ts).
 */
import type { DatabaseSync } from "node:sqlite"
import { Clock, Context, Effect, Layer } from "effect"
import { defaultRollupLimits, defaultRollupTiers, type RollupLimits, type RollupTiers } from "../../projections/events/rollupBuckets.ts"
import { ReadModelError } from "../../projections/ReadModelError.ts"
import { sqliteThreadOnDemand } from "../sqliteThread.ts"
import { openRollupsFile } from "./rollupsFile.ts"
import type { RollupCompact } from "./rollupsCompaction.ts"
import type { RollupWrite, RollupWriteAnswer } from "./rollupsWriterThread.ts"

const writerThread = new URL("./rollupsWriterThread.ts", import.meta.url)

/** What a batch holds: clean events (EVENTS_CLEAN) or ended sessions (SESSIONS). */
export type RollupKind = "events" | "sessions"

/** A message as pulled: its stream sequence, when the stream stored it (ms; read for clean events only), its body (a CleanMessage or a SessionEnded: marked so by its writer, or decoded). */
export interface RollupMessage {
  readonly seq: number
  readonly storedAtMillis: number
  readonly body: string
}

export class RollupStore extends Context.Service<RollupStore, {
  /** a connection to the rollup file, for its other writer (trend alerts) */
  readonly db: DatabaseSync
  /** the last stream sequence applied from `stream` */
  readonly checkpoint: (stream: string) => Effect.Effect<number | undefined, ReadModelError>
  /**
   * Applies `kind` messages of `stream` above the checkpoint, each sequence once, and moves it to the
   * batch's last sequence (or the highest applied), in one transaction; answers how many clean events or
   * sessions were new. A batch missing a sequence between the checkpoint and its last fails, unless
   * the stream no longer holds it (`goneBelow`, `gone`: RollupWrite).
   */
  readonly apply: (
    kind: RollupKind,
    stream: string,
    messages: ReadonlyArray<RollupMessage>,
    batch: Pick<RollupWrite, "batchSeqs" | "lastSeq" | "goneBelow" | "gone">
  ) => Effect.Effect<number, ReadModelError>
  /**
   * Rolls rows that aged past a horizon (RollupTiers) into their hour or day, a few dimension sets a
   * transaction (a step), until none is left or after `maxSteps` steps that rolled rows; answers how many
   * rows were rolled, in how many steps, and the most one step rolled.
   */
  readonly compact: (options?: { readonly maxSteps?: number }) => Effect.Effect<Compacted, ReadModelError>
}>()("tributary/infra/RollupStore") {}

export interface Compacted {
  readonly moved: number
  readonly steps: number
  readonly largestStep: number
}

/** A connection to the rollups file for the life of the Scope. */
export const openRollups = (path: string) =>
  Effect.acquireRelease(
    Effect.try({ try: () => openRollupsFile(path), catch: (cause) => new ReadModelError({ operation: "open rollups", cause }) }),
    (db) => Effect.sync(() => db.close())
  )

/** Dimension sets whose rows one compaction step rolls up at most, and about how many rows (~75 ms of the writer at ~1.5 µs a row). */
const defaultSteps = { setsPerStep: 500, rowsPerStep: 50_000 }

export const layerSqlite = (options: {
  readonly path: string
  readonly limits?: RollupLimits | undefined
  readonly tiers?: RollupTiers | undefined
  /** the compaction's steps (a test's smaller ones) */
  readonly steps?: Pick<RollupCompact, "setsPerStep" | "rowsPerStep"> | undefined
}) =>
  Layer.effect(RollupStore, Effect.gen(function*() {
    // opened (its tables created) before the thread opens it too
    const db = yield* openRollups(options.path)
    // only the process holding the rollups' lease writes
    const writer = yield* sqliteThreadOnDemand<RollupWrite | RollupCompact, RollupWriteAnswer>(writerThread, {
      path: options.path,
      limits: options.limits ?? defaultRollupLimits,
      tiers: options.tiers ?? defaultRollupTiers
    }, {
      name: "the rollups' writer thread",
      failed: (cause) => ({ _tag: "Failed", cause })
    })

    return RollupStore.of({
      db,
      checkpoint: (stream) =>
        Effect.try({
          try: () => (db.prepare("SELECT seq FROM rollup_checkpoints WHERE stream = ?").get(stream) as { seq: number } | undefined)?.seq,
          catch: (cause) => new ReadModelError({ operation: "rollup checkpoint", cause })
        }),
      apply: (kind, stream, messages, batch) =>
        Effect.flatMap(
          Effect.flatMap(Clock.currentTimeMillis, (nowMillis) => writer.request({
            kind,
            stream,
            seqs: messages.map((m) => m.seq),
            storedAt: messages.map((m) => m.storedAtMillis),
            bodies: messages.map((m) => m.body),
            batchSeqs: batch.batchSeqs,
            lastSeq: batch.lastSeq,
            goneBelow: batch.goneBelow,
            gone: batch.gone,
            nowMillis
          })),
          (answer) =>
            answer._tag === "Applied"
              ? Effect.succeed(answer.fresh)
              : Effect.fail(new ReadModelError({ operation: `apply ${kind}`, cause: answer._tag === "Failed" ? answer.cause : new Error("not an answer to a batch") }))
        ),
      compact: (compactOptions) => Effect.gen(function*() {
        let moved = 0
        let steps = 0
        let largestStep = 0
        for (;;) {
          const answer = yield* writer.request({ kind: "compact", nowMillis: yield* Clock.currentTimeMillis, ...(options.steps ?? defaultSteps) })
          if (answer._tag === "Failed") return yield* new ReadModelError({ operation: "compact rollups", cause: answer.cause })
          if (answer._tag !== "Compacted") return yield* new ReadModelError({ operation: "compact rollups", cause: new Error("not an answer to a compaction") })
          if (answer.done || steps === compactOptions?.maxSteps) return { moved, steps, largestStep }
          if (answer.moved === 0) continue
          moved += answer.moved
          steps++
          largestStep = Math.max(largestStep, answer.moved)
        }
      })
    })
  }))
