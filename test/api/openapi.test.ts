import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Schema, Stream } from "effect"
import { forPartner } from "../../api/authorization.ts"
import { openApi } from "../../api/openapi.ts"
import { route } from "../../api/route.ts"
import { adminRoutes } from "../../api/routes/admin.ts"
import { bootstrapKeyRoutes } from "../../api/routes/bootstrapKey.ts"
import { entityRoutes } from "../../api/routes/entities.ts"
import { historyRoutes } from "../../api/routes/history.ts"
import { opsRoutes } from "../../api/routes/ops.ts"
import { upload } from "../../api/streaming.ts"
import { makeRegistry } from "../../domain/DeciderRegistry.ts"
import { deciders } from "../../domain/entities/index.ts"
import { ledger } from "../fixtures/ledger.ts"
import { layerTestApp, TestApp } from "../fixtures/app.ts"

type Json = Record<string, unknown>
type Operation = {
  parameters: Array<{ name: string; in: string; required: boolean; schema: Json }>
  requestBody?: { description?: string; content: Record<string, { schema: Json }> }
  responses: Record<string, { description: string; content?: Record<string, { schema: Json }> }>
}
interface Document {
  openapi: string
  paths: Record<string, Record<string, Operation>>
  components: { schemas: Record<string, Json> }
}

/**
 * The structural rules of OpenAPI 3.1 that a generated document can break: every path parameter
 * declared, every operation answering with described responses, every $ref resolving.
 */
const assertValid = (doc: Document) => {
  assert.strictEqual(doc.openapi, "3.1.0")
  for (const [path, operations] of Object.entries(doc.paths)) {
    const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1])
    for (const [method, op] of Object.entries(operations)) {
      const where = `${method.toUpperCase()} ${path}`
      assert.deepStrictEqual(op.parameters.filter((p) => p.in === "path").map((p) => p.name).sort(), [...inPath].sort(), where)
      for (const p of op.parameters) {
        assert.include(["path", "query", "header"], p.in, where)
        assert.isObject(p.schema, where)
        if (p.in === "path") assert.isTrue(p.required, where)
      }
      assert.isAbove(Object.keys(op.responses).length, 0, where)
      for (const [status, response] of Object.entries(op.responses)) {
        assert.match(status, /^[1-5]\d\d$/, where)
        assert.isString(response.description, `${where} ${status}`)
      }
    }
  }
  const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]!)
  for (const ref of refs) {
    assert.match(ref, /^#\/components\/schemas\//)
    assert.property(doc.components.schemas, ref.slice("#/components/schemas/".length), `unresolved ${ref}`)
  }
}

const Tick = Schema.Struct({ n: Schema.Int }).annotate({ identifier: "Tick" })

const routes = [
  route({
    method: "POST", url: "/v1/test/partners/:partner/files", tags: ["test"], roles: ["partner"],
    summary: "a partner's file", params: Schema.Struct({ partner: Schema.String }),
    authorize: ({ principal, params }) => forPartner(principal, params.partner),
    body: upload({ contentTypes: ["text/csv", "application/gzip"], maxBytes: 5_000_000_000, description: "The partner's file." }),
    responses: { 202: { description: "stored" } },
    handler: () => Effect.succeed({ status: 202 })
  }),
  route({
    method: "GET", url: "/v1/test/ticks", tags: ["test"], roles: ["service"], summary: "ticks", rateCost: 5,
    responses: { 200: { description: "ticks", stream: { item: Tick, eventId: (t: typeof Tick.Type) => String(t.n) } } },
    handler: () => Effect.succeed({ status: 200, stream: Stream.make({ n: 1 }) })
  })
]

describe("the platform's OpenAPI document", () => {
  it("is valid and documents every route, the history stream as NDJSON and SSE, and the answers every keyed route may give", () => {
    const platformRoutes = [...opsRoutes({}), ...entityRoutes({ registry: makeRegistry([...deciders, ledger]) }), ...historyRoutes, ...adminRoutes, ...bootstrapKeyRoutes]
    const doc = openApi(platformRoutes, { title: "t", version: "1", description: "d" }) as unknown as Document
    assertValid(doc)
    for (const r of platformRoutes) assert.property(doc.paths[r.url.replace(/:(\w+)/g, "{$1}")] ?? {}, r.method.toLowerCase(), r.url)
    const stream = doc.paths["/v1/history/stream"]!.get!
    const content = stream.responses["200"]!.content!
    assert.deepStrictEqual(content["application/x-ndjson"]!.schema.$ref, "#/components/schemas/EventEnvelope")
    assert.strictEqual(content["text/event-stream"]!.schema.type, "string")
    assert.deepStrictEqual(content["text/event-stream"]!.schema.contentSchema, { $ref: "#/components/schemas/EventEnvelope" })
    assert.isTrue(stream.parameters.some((p) => p.name === "last-event-id" && p.in === "header"))
    assert.includeMembers(Object.keys(stream.responses), ["401", "403", "429"])
    assert.notProperty(doc.paths["/health"]!.get!.responses, "429")
  })
})

layer(layerTestApp(routes), { excludeTestServices: true, timeout: 60_000 })("the served OpenAPI document", (it) => {
  it.effect("documents uploads (media types, binary, limit, 413/415) and streamed answers (NDJSON, SSE, item schema)", () =>
    Effect.gen(function*() {
      const { url } = yield* TestApp
      const doc = yield* Effect.promise(() => fetch(`${url}/docs/json`).then((res) => res.json() as Promise<Document>))
      assertValid(doc)
      const files = doc.paths["/v1/test/partners/{partner}/files"]!.post!
      assert.deepStrictEqual(Object.keys(files.requestBody!.content), ["text/csv", "application/gzip"])
      assert.deepStrictEqual(files.requestBody!.content["text/csv"]!.schema, { type: "string", format: "binary" })
      assert.include(files.requestBody!.description, "at most 5000000000 bytes")
      assert.includeMembers(Object.keys(files.responses), ["202", "401", "403", "413", "415", "429"])
      const ticks = doc.paths["/v1/test/ticks"]!.get!
      assert.deepStrictEqual(Object.keys(ticks.responses["200"]!.content!).sort(), ["application/x-ndjson", "text/event-stream"])
      assert.deepStrictEqual(doc.components.schemas.Tick!.required, ["n"])
      assert.match(String((ticks as unknown as { description: string }).description), /Takes 5 tokens/)
    }))
})
