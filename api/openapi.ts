/**
 * The OpenAPI 3.1 document, derived from the routes' effect/Schema schemas (never written by hand).
 * Streamed uploads are documented as binary bodies of their media types with their size limit;
 * streamed answers as `application/x-ndjson` (each line one item of the item schema) and
 * `text/event-stream` (each event's data one item). Answers every keyed route may give (401, 403,
 * 429, and 413/415 for uploads) are added where a route does not declare them.
 */
import { Schema } from "effect"
import { Problem } from "./problems.ts"
import type { AnyRoute, ResponseSpec } from "./route.ts"
import { eventStream, isUpload, ndjson, type Upload } from "./streaming.ts"

type JsonObject = Record<string, unknown>

/** JSON Schema of a schema's encoded (wire) side, its $defs hoisted into `definitions`. */
const jsonSchema = (schema: Schema.Top, definitions: JsonObject): JsonObject => {
  const doc = Schema.toJsonSchemaDocument(schema)
  const hoist = (value: unknown) => JSON.parse(JSON.stringify(value).replaceAll('"#/$defs/', '"#/components/schemas/'))
  for (const [name, definition] of Object.entries(doc.definitions)) definitions[name] = hoist(definition)
  return hoist(doc.schema)
}

const parameters = (where: "path" | "query" | "header", schema: Schema.Top | undefined, definitions: JsonObject) => {
  if (schema === undefined) return []
  const object = jsonSchema(schema, definitions)
  const required = new Set((object.required as Array<string> | undefined) ?? [])
  return Object.entries((object.properties as Record<string, JsonObject> | undefined) ?? {}).map(([name, property]) => ({
    name,
    in: where,
    required: where === "path" || required.has(name),
    schema: property
  }))
}

const uploadBody = (upload: Upload) => ({
  required: true,
  description: `${upload.description} Streamed: at most ${upload.maxBytes} bytes (413 beyond); Content-Encoding: gzip is decoded and the limit counts decoded bytes.`,
  content: Object.fromEntries(upload.contentTypes.map((type) => [type, { schema: { type: "string", format: "binary" } }]))
})

const responseContent = (response: ResponseSpec, definitions: JsonObject) => {
  if (response.stream !== undefined) {
    const item = jsonSchema(response.stream.item, definitions)
    return {
      content: {
        [ndjson]: { schema: { ...item, description: "one JSON value a line, each of this schema" } },
        [eventStream]: {
          schema: {
            type: "string",
            description: `Server-Sent Events: each event's data is one JSON value of this schema${response.stream.eventId ? "; its id resumes the stream (Last-Event-ID)" : ""}`,
            contentMediaType: eventStream,
            contentSchema: item
          }
        }
      }
    }
  }
  return response.schema === undefined ? {} : { content: { [response.contentType ?? "application/json"]: { schema: jsonSchema(response.schema, definitions) } } }
}

/** Answers any keyed route may give, documented once here rather than by every route. */
const implied = (r: AnyRoute<unknown>): Record<number, string> => {
  const keyed: Record<number, string> = r.roles === "public" ? {} : {
    401: "missing or unknown API key",
    403: "this key may not do this (its role, or what it may act on)",
    429: "this key is over its rate limit; retry after Retry-After seconds"
  }
  const upload: Record<number, string> = isUpload(r.body) ? { 413: "the body is over this route's limit", 415: "unsupported Content-Type or Content-Encoding" } : {}
  return { ...keyed, ...upload }
}

const description = (r: AnyRoute<unknown>) => [
  r.roles === "public" ? undefined : `Roles: admin${r.roles.map((x: string) => `, ${x}`).join("")}${r.authorize ? " (each only for what its key is scoped to)" : ""}.`,
  r.roles === "public" || r.rateCost === undefined ? undefined : `Takes ${r.rateCost} tokens of the key's rate limit.`
].filter((line) => line !== undefined).join(" ")

export const openApi = (routes: ReadonlyArray<AnyRoute<unknown>>, info: { readonly title: string; readonly version: string; readonly description: string }) => {
  const definitions: JsonObject = {}
  const paths: Record<string, Record<string, unknown>> = {}
  const problem = () => ({ "application/problem+json": { schema: jsonSchema(Problem, definitions) } })
  for (const r of routes) {
    const path = r.url.replace(/:(\w+)/g, "{$1}")
    const body = r.body === undefined || isUpload(r.body) ? undefined : jsonSchema(r.body, definitions)
    const declared = Object.fromEntries(Object.entries(r.responses as Record<string, ResponseSpec>).map(([status, response]) => [status, {
      description: response.description,
      ...responseContent(response, definitions)
    }]))
    const implicit = Object.fromEntries(Object.entries(implied(r)).filter(([status]) => !(status in declared)).map(([status, text]) => [status, {
      description: text,
      content: problem()
    }]))
    paths[path] ??= {}
    paths[path][String(r.method).toLowerCase()] = {
      summary: r.summary,
      tags: r.tags,
      ...(r.roles === "public" ? { security: [] } : { description: description(r) }),
      parameters: [
        ...parameters("path", r.params, definitions),
        ...parameters("query", r.query, definitions),
        ...parameters("header", r.headers, definitions)
      ],
      ...(isUpload(r.body) ? { requestBody: uploadBody(r.body) } : body === undefined ? {} : {
        requestBody: { required: true, content: Object.fromEntries((r.consumes ?? ["application/json"]).map((type: string) => [type, { schema: body }])) }
      }),
      responses: { ...declared, ...implicit }
    }
  }
  return {
    openapi: "3.1.0",
    info,
    paths,
    components: { schemas: definitions, securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "Authorization: Bearer <API key>" } } },
    security: [{ apiKey: [] }]
  }
}
