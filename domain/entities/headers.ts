/**
 * HTTP headers a destination sends with every request: plain ones (kept in history) and secret ones
 * (kept encrypted apart). Names are HTTP tokens; the platform sets some headers itself, and those a
 * destination may not set; secret-looking names are refused among the plain ones, since history is
 * readable by every auditor.
 */
import { Schema } from "effect"

export const maxHeaders = 32

export const HeaderName = Schema.String.check(
  Schema.isMaxLength(64),
  Schema.isPattern(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, { description: "an HTTP header name (token)" })
)

/** A header value's longest length. */
export const maxHeaderValue = 4_096

/** Visible ASCII, spaces and tabs: no CR/LF, which would split the header. */
export const HeaderValue = Schema.String.check(
  Schema.isMaxLength(maxHeaderValue),
  Schema.isPattern(/^[\t\x20-\x7e]*$/, { description: "printable ASCII, no line breaks" })
)

/** Set by the platform (framing, hop-by-hop, the request's own Idempotency-Key). */
const reserved = new Set([
  "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host",
  "content-length", "expect", "idempotency-key"
])

/** What carries credentials: such a header belongs in secretHeaders. */
const secretLooking = /^(authorization|proxy-authorization|cookie)$|token|secret|api-?key|password|auth/

/**
 * The problems of a set of headers under `field`: reserved names, secret-looking names among plain
 * headers, the same name twice in different case, too many.
 */
export const headerIssues = (
  headers: Readonly<Record<string, string | null>>,
  field: string,
  options: { readonly secrets: "refuse" | "allow" }
): ReadonlyArray<{ readonly path: ReadonlyArray<string>; readonly issue: string }> => {
  const names = Object.keys(headers)
  const seen = new Set<string>()
  const issues: Array<{ readonly path: ReadonlyArray<string>; readonly issue: string }> = []
  if (names.length > maxHeaders) issues.push({ path: [field], issue: `at most ${maxHeaders} headers` })
  for (const name of names) {
    const lower = name.toLowerCase()
    if (reserved.has(lower)) issues.push({ path: [field, name], issue: `${name} is set by the platform` })
    else if (options.secrets === "refuse" && secretLooking.test(lower)) {
      issues.push({ path: [field, name], issue: `${name} looks secret and headers are kept in history: put it in secretHeaders` })
    }
    if (seen.has(lower)) issues.push({ path: [field, name], issue: `${name} is given twice (header names ignore case)` })
    seen.add(lower)
  }
  return issues
}
