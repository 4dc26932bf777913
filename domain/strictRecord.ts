/**
 * A record whose keys must each be a `key`, refused by name when one is not. `Schema.Record` with a
 * refined key schema drops the keys that fail it instead of refusing them: an app event's prop key of 65
 * characters, a destination header name with a space and a partner's segment code of 201 characters
 * were each lost without a word (stop 24's outside attack). The keys are checked as given, against the
 * record's plain string keys.
 */
import { Result, Schema } from "effect"

export const StrictRecord = <Value extends Schema.Top>(
  key: Schema.Codec<string, string>,
  value: Value,
  /** the record's own (its JSON Schema's: `description`, `writeOnly`), given here: annotated after the check, they go to the check */
  annotations: Schema.Annotations.Annotations = {}
) => {
  const checkKey = Schema.decodeUnknownResult(key)
  return Schema.Record(Schema.String, value).annotate(annotations).check(Schema.makeFilter((record: Readonly<Record<string, unknown>>) => {
    const issues: Array<Schema.FilterIssue> = []
    for (const name of Object.keys(record)) {
      const checked = checkKey(name)
      if (Result.isFailure(checked)) issues.push({ path: [name], issue: `the key: ${checked.failure.message}` })
    }
    return issues
  }))
}
