import { randomUUID } from "node:crypto"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Metric } from "effect"
import { EventStore } from "../../domain/EventStore.ts"
import type { EventData } from "../../domain/EventStore.ts"
import { instrumented } from "../../infra/eventstore/instrumented.ts"
import { layerSqlite } from "../../infra/eventstore/sqlite.ts"

const event = (): EventData => ({ eventId: randomUUID(), type: "Counted", data: {}, metadata: {} })

/** The counter's value for one outcome (the registry is global: tests compare before and after). */
const counted = (id: string, outcome: string) =>
  Effect.map(Metric.snapshot, (all) => {
    const found = all.find((m) => m.id === id && m.attributes?.outcome === outcome)
    return found?.type === "Counter" ? Number(found.state.count) : 0
  })

describe("instrumented event store", () => {
  it.live("counts multi-stream appends by outcome and their events among the appended ones", () =>
    Effect.gen(function*() {
      const path = join(mkdtempSync(join(tmpdir(), "tributary-instrumented-")), "events.db")
      const store = yield* Layer.build(instrumented(layerSqlite({ path }))).pipe(Effect.map(Context.get(EventStore)))
      const multi = "tributary_eventstore_multi_appends_total"
      const before = { ok: yield* counted(multi, "ok"), conflict: yield* counted(multi, "conflict") }
      const eventsBefore = (yield* Metric.snapshot).find((m) => m.id === "tributary_eventstore_events_appended_total")
      yield* store.appendToStreams([{ stream: "a-1", events: [event(), event()], expectedRevision: "no_stream" }, {
        stream: "b-1",
        events: [event()],
        expectedRevision: "no_stream"
      }])
      yield* Effect.flip(store.appendToStreams([{ stream: "a-1", events: [event()], expectedRevision: 0 }]))
      assert.strictEqual(yield* counted(multi, "ok"), before.ok + 1)
      assert.strictEqual(yield* counted(multi, "conflict"), before.conflict + 1)
      const eventsAfter = (yield* Metric.snapshot).find((m) => m.id === "tributary_eventstore_events_appended_total")
      const value = (m: typeof eventsAfter) => (m?.type === "Counter" ? Number(m.state.count) : 0)
      assert.strictEqual(value(eventsAfter) - value(eventsBefore), 3)
    }))
})
