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

/** Failing fields reported at most; past them one more issue says how many were left out. */
export const maxIssues = 100

/** Values (array items, object members, nested) a document may hold for every failing field to be looked for. */
const maxValuesForAll = 10_000

/** Whether `input` holds more than `limit` values, counted until past it. */
const holdsMoreThan = (input: unknown, limit: number) => {
  let count = 0
  const stack: Array<unknown> = [input]
  while (stack.length > 0) {
    const value = stack.pop()
    if (++count > limit) return true
    if (typeof value === "object" && value !== null) for (const member of Object.values(value)) stack.push(member)
  }
  return false
}

/**
 * Decodes reporting the failing fields; by default strictly (unknown fields are errors too). At most
 * `maxIssues` of them, and every one only in a document of at most `maxValuesForAll` values (else the
 * first): before stop 28, a 1 MB body of 500,000 bad array items cost 1.6 s of the event loop to list
 * them all and answered 39 MB (8 such requests at once: every shard stopped, every lease lost).
 */
export const validate = <S extends Schema.Decoder<unknown>>(
  schema: S,
  input: unknown,
  unknownFields: "error" | "ignore" = "error"
): Result.Result<S["Type"], ReadonlyArray<FieldIssue>> => {
  const first = Schema.decodeUnknownResult(schema)(input, { errors: "first", onExcessProperty: unknownFields })
  if (Result.isSuccess(first)) return Result.succeed(first.success)
  const failed = holdsMoreThan(input, maxValuesForAll)
    ? first
    : Schema.decodeUnknownResult(schema)(input, { errors: "all", onExcessProperty: unknownFields })
  return Result.mapError(failed as typeof first, (error) => {
    const issues = fieldIssues(error.issue)
    return issues.length <= maxIssues
      ? issues
      : [...issues.slice(0, maxIssues), { path: [], message: `and ${issues.length - maxIssues} more failing fields, not listed` }]
  })
}
