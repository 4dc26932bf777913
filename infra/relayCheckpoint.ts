/**
 * The relay's durable checkpoint: the global position of the last event whose HISTORY and SNAPSHOTS
 * messages JetStream acknowledged. One row per relay name in a small SQLite file (`<DATA_DIR>/relay.db`).
 */
import { DatabaseSync } from "node:sqlite"
import { Effect, Schema } from "effect"

/** The relay could not read or write its checkpoint, or could not read HISTORY's tail. */
export class RelayError extends Schema.TaggedError<RelayError>()("RelayError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export interface RelayCheckpoint {
  /** 0 when nothing was relayed yet (positions start at 1) */
  readonly load: Effect.Effect<number, RelayError>
  readonly save: (position: number) => Effect.Effect<void, RelayError>
}

const schema = `
CREATE TABLE IF NOT EXISTS relay_checkpoint (
  name     TEXT PRIMARY KEY,
  position INTEGER NOT NULL
) STRICT;
`

/** Opens (creating if needed) the checkpoint file; closes it with the scope. */
export const openRelayCheckpoint = Effect.fnUntraced(function*(path: string, name: string) {
  const attempt = <A>(operation: string, f: () => A) =>
    Effect.try({ try: f, catch: (cause) => new RelayError({ operation, cause }) })
  const db = yield* Effect.acquireRelease(
    attempt("open checkpoint", () => {
      const db = new DatabaseSync(path, { timeout: 5_000 })
      // synchronous=FULL: a saved checkpoint survives power loss. Losing one would only re-publish
      // (deduplicated), but a checkpoint ahead of the disk must never happen, and FULL keeps it simple.
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
      db.exec(schema)
      return db
    }),
    (db) => Effect.sync(() => db.close())
  )
  const select = db.prepare("SELECT position FROM relay_checkpoint WHERE name = ?")
  // max(): the checkpoint never moves backwards, even if two relays briefly overlap.
  const upsert = db.prepare(
    "INSERT INTO relay_checkpoint (name, position) VALUES (?, ?) " +
      "ON CONFLICT (name) DO UPDATE SET position = max(position, excluded.position)"
  )
  return {
    load: attempt("load checkpoint", () => {
      const row = select.get(name)
      return row === undefined ? 0 : Number(row.position)
    }),
    save: (position) => attempt("save checkpoint", () => void upsert.run(name, position))
  } satisfies RelayCheckpoint
})
