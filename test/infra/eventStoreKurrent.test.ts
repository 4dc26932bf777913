/**
 * The KurrentDB adapter's event encoding, checked against the installed client (1.3.1) without a
 * server: `appendRecords` validates metadata before it sends anything, so a client pointed at a port
 * where nothing listens tells an accepted request (it then fails to connect) from a refused one.
 */
import { randomUUID } from "node:crypto"
import { createRequire } from "node:module"
import { assert, describe, it } from "@effect/vitest"
import { KurrentDBClient, jsonEvent, STREAM_STATE, NO_STREAM } from "@kurrent/kurrentdb-client"
import type { AppendRecordInput, AppendRecordsResult, ConsistencyCheck } from "@kurrent/kurrentdb-client"
import { Effect } from "effect"
import type { EventData } from "../../domain/EventStore.ts"
import { fromMetadata, toEventData } from "../../infra/eventstore/kurrent.ts"

// The public `client.appendRecords` first asks the server which features it supports; the function
// behind it (the same code, bound to the same client) validates the records first.
const { appendRecords } = createRequire(import.meta.url)("@kurrent/kurrentdb-client/dist/streams/appendToStream/appendRecords.js") as {
  appendRecords: (this: KurrentDBClient, records: Array<AppendRecordInput>, checks?: Array<ConsistencyCheck>) => Promise<AppendRecordsResult>
}

const unreachable = () => KurrentDBClient.connectionString("kurrentdb://127.0.0.1:1?tls=false")
const attempt = (metadata: Uint8Array | Record<string, string>) =>
  Effect.acquireUseRelease(
    Effect.sync(unreachable),
    (client) =>
      Effect.promise(() =>
        appendRecords.call(client, [{ streamName: "s-1", record: jsonEvent({ type: "Tested", data: {}, metadata }) }], [
          { type: STREAM_STATE, streamName: "s-1", expectedState: NO_STREAM }
        ]).then(() => "sent", (error: unknown) => String(error))),
    (client) => Effect.promise(() => client.dispose())
  )

describe("KurrentDB event encoding", () => {
  it.live("sends metadata in a form appendRecords accepts, where the bytes sent before are refused", () =>
    Effect.gen(function*() {
      const encoded = toEventData({ eventId: randomUUID(), type: "Tested", data: { n: 1 }, metadata: { nested: { list: [1, null] }, n: 0 } })
      const accepted = yield* attempt(encoded.metadata as Record<string, string>)
      assert.notInclude(accepted, "requires metadata", "validation passed: it failed only for want of a server")
      assert.include(accepted, "UNAVAILABLE")
      const refused = yield* attempt(new TextEncoder().encode(JSON.stringify({ n: 0 })))
      assert.include(refused, "requires metadata to be a plain object")
    }))

  it("reads back any JSON metadata exactly, falsy values included, and events stored before the encoding as they were", () => {
    const examples: Array<EventData["metadata"]> = [{ correlationId: "c", causationId: null, tags: ["a"] }, {}, null, 0, false, "", [1, "two"]]
    for (const metadata of examples) {
      const encoded = toEventData({ eventId: randomUUID(), type: "Tested", data: {}, metadata }).metadata
      // the server stores an object's JSON; properties it adds of its own are ignored
      const stored = JSON.stringify({ ...(encoded as object), "$schema.name": "Tested" })
      assert.deepStrictEqual(fromMetadata(JSON.parse(stored)), metadata, "as the client parses it")
      assert.deepStrictEqual(fromMetadata(new TextEncoder().encode(stored)), metadata, "as bytes, when it does not")
    }
    assert.deepStrictEqual(fromMetadata(new TextEncoder().encode(JSON.stringify({ legacy: true }))), { legacy: true })
  })
})
