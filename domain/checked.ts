/**
 * What the platform writes to its own streams from values it had just decoded carries the schema they
 * were checked against: `Tributary-Checked: <schema>/<version>`. A reader of those streams takes such a
 * message's JSON as that schema's value, and decodes every other message with the schema: one written
 * before the mark, by a version whose schema differs, or by anything else that could publish there. The
 * app-event intake decodes each SDK event, the device pipeline decoded each again off EVENTS, and the
 * rollups each clean event once more off EVENTS_CLEAN, to learn what its writer had checked (stop 30:
 * 5–25% of the pipeline's CPU, README "Marked messages"). A schema that changes what it accepts changes its version, so
 * messages checked against the older one are decoded again.
 */
import { Option } from "effect"

export const checkedHeader = "Tributary-Checked"

/**
 * Reads a message of a stream whose writer marks it `mark`: the JSON as the schema's value when its
 * header (`checkedHeader`'s value, if any) is the mark, else `decode`'s answer. Not JSON: none.
 */
export const readChecked = <A>(mark: string, decode: (text: string) => Option.Option<A>) =>
  (text: string, header: string | undefined): Option.Option<A> => {
    if (header !== mark) return decode(text)
    try {
      return Option.some(JSON.parse(text) as A)
    } catch {
      return Option.none()
    }
  }
