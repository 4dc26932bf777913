import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { EntityMemory } from "../../actors/entity/EntityMemory.ts"
import { deciders } from "../../domain/entities/index.ts"
import { StreamNames } from "../../domain/subjects.ts"
import { assertInvalid, assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { lastOnSubject, streamMessages } from "../fixtures/jetstreamContents.ts"
import { ledger, quietLedger } from "../fixtures/ledger.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

const command = (type: string, id: string, body: unknown, headers: Record<string, string> = {}) =>
  request({ method: "POST", url: `/v1/entities/${type}/${id}/commands`, body, headers })

// The built-in types plus two ledgers: the platform takes its entity types as configuration.
layer(layerTestPlatform({ SNAPSHOT_EVERY: "100", ENTITY_MEMORY_BYTES: "50000" }, { deciders: [...deciders, ledger, quietLedger] }), { excludeTestServices: true, timeout: 60_000 })(
  "an entity type added by configuration",
  (it) => {
    it.effect("goes through the bus and its actor: created, applied, refused by its own rules", () =>
      Effect.gen(function*() {
        const created = yield* command("ledger", "acct-1", { _tag: "Deposit", amount: 10 })
        assert.strictEqual(created.statusCode, 201, created.body)
        assert.deepStrictEqual(created.json(), { type: "ledger", id: "acct-1", revision: 0, state: { balance: 10, heldUntil: null }, updatedAt: created.json().updatedAt })
        const withdrawn = yield* command("ledger", "acct-1", { _tag: "Withdraw", amount: 3 }, { "if-match": '"0"' })
        assert.strictEqual(withdrawn.statusCode, 200, withdrawn.body)
        assert.deepStrictEqual(withdrawn.json().state, { balance: 7, heldUntil: null })
        assert.strictEqual(withdrawn.headers.etag, '"1"')
        assertProblem(yield* command("ledger", "acct-1", { _tag: "Withdraw", amount: 100 }), 409, "command-refused")
        assertProblem(yield* command("ledger", "acct-1", { _tag: "Deposit", amount: 1 }, { "if-match": '"0"' }), 412, "revision-mismatch")
        const now = yield* request({ method: "GET", url: "/v1/entities/ledger/acct-1" })
        assert.deepStrictEqual(now.json().state, { balance: 7, heldUntil: null })
        assert.strictEqual(now.json().revision, 1)
      }))

    it.effect("decodes the body with the decider's command schema, and keeps Wake for the reminders", () =>
      Effect.gen(function*() {
        assertInvalid(yield* command("ledger", "acct-2", { _tag: "Deposit", amount: -1 }), "body", "/amount")
        assertInvalid(yield* command("ledger", "acct-2", { _tag: "Steal", amount: 1 }), "body", "/") // no member of the union
        assertInvalid(yield* command("ledger", "acct-2", { _tag: "Wake", at: 1 }), "body", "/_tag")
        assertInvalid(yield* command("ledger", "NOT VALID", { _tag: "Deposit", amount: 1 }), "path", "/id")
        // a record type has no command route: its commands are PUT, PATCH and DELETE
        assert.strictEqual((yield* command("advertiser", "1", { _tag: "Put", fields: { name: "x" } })).statusCode, 404)
        assert.strictEqual((yield* request({ method: "GET", url: "/v1/entities/ledger/acct-2" })).statusCode, 404)
      }))

    it.effect("is woken by its reminder: the hold ends at its instant, through the bus, without anyone sending a command", () =>
      Effect.gen(function*() {
        yield* command("ledger", "acct-held", { _tag: "Deposit", amount: 10 })
        const until = Date.now() + 1_500
        const held = yield* command("ledger", "acct-held", { _tag: "Hold", until })
        assert.deepStrictEqual(held.json().state, { balance: 10, heldUntil: until })
        assertProblem(yield* command("ledger", "acct-held", { _tag: "Withdraw", amount: 1 }), 409, "command-refused")
        // the platform's reminder scheduler fires the Wake once the hold is due; the entity releases it
        const released = yield* eventually(
          request({ method: "GET", url: "/v1/entities/ledger/acct-held" }),
          (res) => res.json().state.heldUntil === null,
          "20 seconds"
        )
        assert.isAtLeast(Date.parse(released.json().updatedAt), until)
        const auditor = yield* createKey("auditor")
        const history = yield* request({ method: "GET", url: "/v1/entities/ledger/acct-held/history", key: auditor.secret })
        const events = history.json().events as ReadonlyArray<{ type: string; commandId: string }>
        assert.deepStrictEqual(events.map((e) => e.type), ["Deposited", "HoldPlaced", "HoldReleased"])
        assert.match(events[2]!.commandId, new RegExp(`^wake:ledger:acct-held:${until}:\\d+$`))
        assert.strictEqual((yield* command("ledger", "acct-held", { _tag: "Withdraw", amount: 1 })).statusCode, 200)
      }))

    it.effect("is answered once per Idempotency-Key", () =>
      Effect.gen(function*() {
        const first = yield* command("ledger", "acct-3", { _tag: "Deposit", amount: 5 }, { "idempotency-key": "k1" })
        const again = yield* command("ledger", "acct-3", { _tag: "Deposit", amount: 5 }, { "idempotency-key": "k1" })
        assert.strictEqual(again.statusCode, 201)
        assert.deepStrictEqual(again.json(), first.json())
        const auditor = yield* createKey("auditor")
        const history = yield* request({ method: "GET", url: "/v1/entities/ledger/acct-3/history", key: auditor.secret })
        assert.strictEqual(history.json().events.length, 1)
      }))

    it.effect("appears in HISTORY and, when its decider publishes them, SNAPSHOTS; its history and asOf read like any type's", () =>
      Effect.gen(function*() {
        for (const type of ["ledger", "quiet_ledger"]) {
          for (const amount of [1, 2, 3]) assert.isBelow((yield* command(type, "acct-9", { _tag: "Deposit", amount })).statusCode, 300)
        }
        const auditor = yield* createKey("auditor")
        const history = yield* request({ method: "GET", url: "/v1/entities/ledger/acct-9/history", key: auditor.secret })
        const events = history.json().events as ReadonlyArray<{ type: string; data: unknown; recordedAt: string; entityType: string }>
        assert.deepStrictEqual(events.map((e) => [e.type, e.data]), [["Deposited", { amount: 1 }], ["Deposited", { amount: 2 }], ["Deposited", { amount: 3 }]])
        const asOf = yield* request({ method: "GET", url: `/v1/entities/ledger/acct-9?asOf=${events[1]!.recordedAt}`, key: auditor.secret })
        assert.strictEqual(asOf.json().revision, events.filter((e) => e.recordedAt <= events[1]!.recordedAt).length - 1)
        assert.deepStrictEqual(asOf.json().state.balance, [1, 3, 6][asOf.json().revision])

        const onHistory = yield* eventually(streamMessages(StreamNames.history), (messages) =>
          messages.filter((m) => m.subject === "history.quiet_ledger.acct-9").length === 3 &&
          messages.filter((m) => m.subject === "history.ledger.acct-9").length === 3)
        assert.deepStrictEqual(onHistory.filter((m) => m.subject === "history.ledger.acct-9").map((m) => (m.body as { type: string }).type), ["Deposited", "Deposited", "Deposited"])
        const snapshot = yield* eventually(lastOnSubject(StreamNames.snapshots, "snapshot.ledger.acct-9"), (m) => (m?.body as { revision?: number } | undefined)?.revision === 2)
        assert.deepStrictEqual((snapshot!.body as { state: unknown }).state, { balance: 6, heldUntil: null })
        // everything of quiet_ledger is relayed (HISTORY above), and still no snapshot of it
        assert.isUndefined(yield* lastOnSubject(StreamNames.snapshots, "snapshot.quiet_ledger.acct-9"))
        assert.isFalse((yield* streamMessages(StreamNames.snapshots)).some((m) => m.subject.startsWith("snapshot.quiet_ledger.")))

        const listed = yield* eventually(request({ method: "GET", url: "/v1/entities/quiet_ledger" }), (res) => res.json().items?.length === 1)
        assert.deepStrictEqual(listed.json().items[0].state, { balance: 6, heldUntil: null })
      }))

    it.effect("counts what its actors keep against the process's ENTITY_MEMORY_BYTES", () =>
      Effect.gen(function*() {
        for (let i = 0; i < 5; i++) assert.isBelow((yield* command("ledger", `mem-${i}`, { _tag: "Deposit", amount: 1 })).statusCode, 300)
        const memory = yield* EntityMemory
        assert.strictEqual(memory.budget, 50_000)
        assert.isAbove(yield* memory.bytes, 0)
        assert.isAtMost(yield* memory.bytes, 50_000)
      }))

    describe("projections", () => {
      it.effect("rebuild by name (404 problem+json for an unknown one), and each projection's lag in /metrics", () =>
        Effect.gen(function*() {
          assertProblem(yield* request({ method: "POST", url: "/v1/admin/projections/nope/rebuild" }), 404, "not-found")
          assert.strictEqual((yield* request({ method: "POST", url: "/v1/admin/projections/entities/rebuild" })).statusCode, 202)
          const metrics = yield* eventually(request({ method: "GET", url: "/metrics", key: null }), (res) => res.body.includes("tributary_projection_lag_events"))
          assert.match(metrics.body, /tributary_projection_lag_events\{[^}]*projection="entities"[^}]*\} \d+/)
          assert.match(metrics.body, /tributary_entity_memory_bytes \d+/)
        }))
    })

    describe("OpenAPI", () => {
      it.effect("documents the command route's body from the decider's command schema", () =>
        Effect.gen(function*() {
          const doc = (yield* request({ method: "GET", url: "/docs/json", key: null })).json()
          const post = doc.paths["/v1/entities/ledger/{id}/commands"]?.post
          assert.isDefined(post)
          assert.include(JSON.stringify(doc), "Withdraw")
          assert.isUndefined(doc.paths["/v1/entities/ledger/{id}"]?.put)
        }))
    })
  }
)
