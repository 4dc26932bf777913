/**
 * The delivery read model (projections/delivery/receipts.ts) in DATA_DIR/delivery-receipts.db, fed
 * from RECEIPTS by a durable pull consumer. A batch of receipts is one transaction: its rows (upserts
 * that keep the later receipt) and the highest stream sequence applied, the checkpoint a lost
 * consumer is made again from. Messages are acknowledged after the commit, so a crash in between
 * delivers them again: applying a receipt twice changes nothing. Every process on this DATA_DIR
 * shares the consumer (named by an id kept in the file), so each receipt is applied by one of them.
 */
import { randomBytes } from "node:crypto"
import { AckPolicy, DeliverPolicy, JetStreamApiCodes } from "@nats-io/jetstream"
import type { JsMsg } from "@nats-io/jetstream"
import { nanos } from "@nats-io/transport-node"
import { Effect, Layer, Option, Schedule, Schema, Stream } from "effect"
import { allReceipts, StreamNames } from "../../domain/subjects.ts"
import { type Delivery, DeliveryReadModel, type DeliveryRow, ReceiptsView, rowsOf } from "../../projections/delivery/receipts.ts"
import { ReadModelError } from "../../projections/ReadModelError.ts"
import { openSharedSqlite } from "../ingest/sqliteFile.ts"
import { isApiError } from "../nats/freshConsumer.ts"
import { Nats, tryNats } from "../nats/Nats.ts"
import { transaction } from "../sqliteTransaction.ts"
import { consumeScoped } from "../nats/consumeScoped.ts"

export interface ReceiptsOptions {
  readonly path: string
  /** RECEIPTS messages applied in one transaction at most; default 1,000 */
  readonly batch?: number
}

const decodeReceipts = Schema.decodeUnknownOption(Schema.fromJsonString(ReceiptsView))

export const layerSqlite = (options: ReceiptsOptions) =>
  Layer.effect(DeliveryReadModel, Effect.gen(function*() {
    const fail = (operation: string) => (cause: unknown) => new ReadModelError({ operation, cause })
    const use = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: fail(operation) })
    const db = yield* Effect.acquireRelease(
      use("open delivery receipts", () => {
        const db = openSharedSqlite(options.path)
        db.exec(`CREATE TABLE IF NOT EXISTS deliveries (
            profile TEXT NOT NULL, segment TEXT NOT NULL, destination TEXT NOT NULL, at TEXT NOT NULL, at_ms INTEGER NOT NULL,
            status INTEGER NOT NULL, request_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (profile, segment, destination)) WITHOUT ROWID;
          CREATE TABLE IF NOT EXISTS receipts_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`)
        // the consumer's name, the same for every process on this file
        db.prepare(`INSERT OR IGNORE INTO receipts_meta (key, value) VALUES ('consumer', ?)`).run(`receipts-${randomBytes(6).toString("hex")}`)
        return db
      }),
      (db) => Effect.sync(() => db.close())
    )
    const meta = db.prepare(`SELECT value FROM receipts_meta WHERE key = ?`)
    const setCheckpoint = db.prepare(`INSERT INTO receipts_meta (key, value) VALUES ('checkpoint', ?)
      ON CONFLICT (key) DO UPDATE SET value = CAST(max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)`)
    // the later receipt wins: by time, then by stream sequence
    const upsert = db.prepare(`INSERT INTO deliveries (profile, segment, destination, at, at_ms, status, request_id, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (profile, segment, destination) DO UPDATE SET at = excluded.at, at_ms = excluded.at_ms, status = excluded.status,
        request_id = excluded.request_id, seq = excluded.seq
      WHERE excluded.at_ms > deliveries.at_ms OR (excluded.at_ms = deliveries.at_ms AND excluded.seq > deliveries.seq)`)
    const ofProfile = db.prepare(`SELECT segment, destination, at, status FROM deliveries WHERE profile = ? ORDER BY segment, destination`)
    const consumerName = (meta.get("consumer") as { readonly value: string }).value
    const checkpoint = () => Number((meta.get("checkpoint") as { readonly value: string } | undefined)?.value ?? 0)

    const apply = (rows: ReadonlyArray<DeliveryRow>, lastSeq: number) =>
      use("apply receipts", () =>
        transaction(db, () => {
          for (const r of rows) upsert.run(r.profile, r.segmentId, r.destination, r.at, r.atMillis, r.status, r.requestId, r.seq)
          setCheckpoint.run(String(lastSeq))
        }))

    const { jetstream, manager } = yield* Nats
    /** The shared consumer: made (from after the checkpoint) only when missing, since other processes may be using it. */
    const consumer = Effect.gen(function*() {
      const exists = yield* tryNats("receipts consumer", () => manager.consumers.info(StreamNames.receipts, consumerName)).pipe(
        Effect.as(true),
        Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.ConsumerNotFound), () => Effect.succeed(false))
      )
      if (!exists) {
        const after = checkpoint()
        yield* tryNats("add receipts consumer", () => manager.consumers.add(StreamNames.receipts, {
          durable_name: consumerName,
          filter_subject: allReceipts,
          ack_policy: AckPolicy.Explicit,
          ack_wait: nanos(60_000),
          max_ack_pending: 10_000,
          ...(after === 0 ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 })
        }))
      }
      return yield* tryNats("get receipts consumer", () => jetstream.consumers.get(StreamNames.receipts, consumerName))
    })

    const follow = Effect.scoped(Effect.gen(function*() {
      const receipts = yield* consumer
      const messages = yield* consumeScoped("consume receipts", () => receipts.consume({ max_messages: 1_000 }))
      yield* Stream.fromAsyncIterable(messages, fail("consume receipts")).pipe(
        // a commit (fsynced, on the event loop delivery shares) at most every quarter second while
        // receipts flow, not 20 a second: each one holds every answer waiting behind it
        Stream.groupedWithin(options.batch ?? 1_000, "250 millis"),
        Stream.runForEach((batch: ReadonlyArray<JsMsg>) =>
          Effect.gen(function*() {
            const decoded: Array<{ message: ReceiptsView; seq: number }> = []
            for (const msg of batch) {
              const message = decodeReceipts(msg.string())
              if (Option.isSome(message)) decoded.push({ message: message.value, seq: msg.seq })
            }
            const skipped = batch.length - decoded.length
            if (skipped > 0) yield* Effect.logWarning("receipts that do not decode were skipped", { count: skipped })
            yield* apply(rowsOf(decoded), Math.max(...batch.map((msg) => msg.seq)))
            for (const msg of batch) msg.ack()
          }))
      )
    }))
    // restarted after a failure (NATS away, disk full): what was not acknowledged arrives again
    yield* follow.pipe(
      Effect.tapCause((cause) => Effect.logWarning("the delivery receipts feed stopped; restarting", cause)),
      Effect.retry(Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("10 seconds")])),
      Effect.forever,
      Effect.forkScoped
    )

    return DeliveryReadModel.of({
      deliveriesOf: (profile) =>
        use("read deliveries", () => {
          const bySegment = new Map<string, Array<Delivery>>()
          for (const row of ofProfile.all(profile) as Array<{ segment: string; destination: string; at: string; status: number }>) {
            const list = bySegment.get(row.segment) ?? []
            list.push({ destination: row.destination, at: row.at, status: row.status })
            bySegment.set(row.segment, list)
          }
          return bySegment
        })
    })
  }))
