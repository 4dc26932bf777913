/**
 * How a job's bytes become lines (infra/ingest/translateStream.ts implements it): given to the
 * translators by the platform's wiring, so actors depend on the shape only.
 */
export type { InputBroken, TranslatedLine, Translation } from "../../infra/ingest/translateStream.ts"
import type { Stream } from "effect"
import type { InputBroken, TranslatedLine, Translation } from "../../infra/ingest/translateStream.ts"

export type Translate = <E>(
  translation: Translation,
  input: Stream.Stream<Uint8Array, E>,
  options: { readonly receivedAt: string; readonly fromLine?: number }
) => Stream.Stream<TranslatedLine, E | InputBroken>
