/** A read model's store failed (SQLite busy, disk full); reads answer 503, projections restart. */
import { Schema } from "effect"

export class ReadModelError extends Schema.TaggedError<ReadModelError>()("ReadModelError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}
