import { Result, Schema, SchemaIssue } from "effect"

/** One failing field: its path inside the validated document, and why. */
export const FieldIssue = Schema.Struct({
  path: Schema.Array(Schema.Union([Schema.String, Schema.Number])),
  message: Schema.String
})
export type FieldIssue = typeof FieldIssue.Type

const format = SchemaIssue.makeFormatterStandardSchemaV1()

/** The failing fields of a schema error, for problem+json and typed rejections. */
export const fieldIssues = (issue: SchemaIssue.Issue): ReadonlyArray<FieldIssue> =>
  format(issue).issues.map((i) => ({
    path: (i.path ?? []).map((p) => {
      const key = typeof p === "object" && p !== null && "key" in p ? p.key : p
      return typeof key === "number" ? key : String(key)
    }),
    message: i.message
  }))

/** Decodes reporting every failing field; by default strictly (unknown fields are errors too). */
export const validate = <S extends Schema.Decoder<unknown>>(
  schema: S,
  input: unknown,
  unknownFields: "error" | "ignore" = "error"
): Result.Result<S["Type"], ReadonlyArray<FieldIssue>> =>
  Result.mapError(
    Schema.decodeUnknownResult(schema)(input, { errors: "all", onExcessProperty: unknownFields }),
    (error) => fieldIssues(error.issue)
  )
