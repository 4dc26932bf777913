/** The OpenAPI 3.1 document, derived from the routes' effect/Schema schemas (never written by hand). */
import { Schema } from "effect"
import type { AnyRoute } from "./route.ts"

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

export const openApi = (routes: ReadonlyArray<AnyRoute<unknown>>, info: { readonly title: string; readonly version: string; readonly description: string }) => {
  const definitions: JsonObject = {}
  const paths: Record<string, Record<string, unknown>> = {}
  for (const r of routes) {
    const path = r.url.replace(/:(\w+)/g, "{$1}")
    const body = r.body === undefined ? undefined : jsonSchema(r.body, definitions)
    paths[path] ??= {}
    paths[path][String(r.method).toLowerCase()] = {
      summary: r.summary,
      tags: r.tags,
      ...(r.roles === "public" ? { security: [] } : { description: `Roles: admin${r.roles.map((x: string) => `, ${x}`).join("")}` }),
      parameters: [
        ...parameters("path", r.params, definitions),
        ...parameters("query", r.query, definitions),
        ...parameters("header", r.headers, definitions)
      ],
      ...(body === undefined ? {} : {
        requestBody: { required: true, content: Object.fromEntries((r.consumes ?? ["application/json"]).map((type: string) => [type, { schema: body }])) }
      }),
      responses: Object.fromEntries(Object.entries(r.responses).map(([status, response]) => [status, {
        description: response.description,
        ...(response.schema === undefined ? {} : { content: { [response.contentType ?? "application/json"]: { schema: jsonSchema(response.schema, definitions) } } })
      }]))
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
