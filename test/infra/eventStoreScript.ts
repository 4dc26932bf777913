/**
 * A program that only opens the SQLite event store, appends and reads, for eventStoreWriter.test.ts:
 * `node eventStoreScript.ts <eventsDb>`. Nothing else keeps its event loop alive, so it shows that
 * the writer thread keeps the process alive while the store opens and while a commit is in flight.
 */
import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { makeSqlite } from "../../infra/eventstore/sqlite.ts"

const [path] = process.argv.slice(2)
if (path === undefined) throw new Error("usage: eventStoreScript.ts <eventsDb>")

const types = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const store = yield* makeSqlite({ path })
  yield* store.appendToStreams([
    { stream: "s-1", events: [{ eventId: randomUUID(), type: "A", data: {}, metadata: {} }], expectedRevision: "no_stream" },
    { stream: "s-2", events: [{ eventId: randomUUID(), type: "B", data: {}, metadata: {} }], expectedRevision: "no_stream" }
  ])
  return (yield* store.readAll()).map((e) => e.type)
})))
console.log(JSON.stringify(types))
