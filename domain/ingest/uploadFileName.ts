/**
 * File names at the file doors (FTP, SFTP). A partner's folder is flat and virtual: it holds only
 * its uploads, so a path names either the folder itself or one file directly in it. Anything else
 * (a sub-folder, `..`, another partner's folder, control characters) names nothing, so no path can
 * reach outside the folder. The name also says what the file holds: `*.jsonl` / `*.ndjson` (gzip or
 * not) are loader-format JSON Lines, any other name is the partner's own format (its format spec).
 */
import type { UploadFormat } from "./Intake.ts"

/** The longest file name accepted (as most file systems). */
export const MAX_FILE_NAME = 255

const loaderName = /\.(jsonl|ndjson)(\.gz)?$/i

/** What a file of this name holds: loader-format JSON Lines, or the partner's format. */
export const formatOfFileName = (name: string): UploadFormat => loaderName.test(name) ? "loader" : "partner"

/**
 * Characters no file name may hold: controls (C0, C1, DEL), format characters (zero-width ones, bidi
 * marks, overrides and isolates, the soft hyphen, the BOM: Unicode's Cf), line and paragraph separators,
 * spaces other than the plain one (no-break, ideographic, the en and em spaces…), and the blank fillers
 * that show as nothing (the combining grapheme joiner, Hangul fillers, Khmer inherent vowels, the
 * braille blank, variation selectors): what makes a name read other than it is. (C0 and DEL only before
 * stop 17: its outside attacks stored names with U+202E, U+009B, U+061C and U+00AD; the other spaces,
 * the braille blank and variation selectors before the re-attack of stop 20.)
 */
const unprintable = /\u034f|\u1160|\u17b4|\u17b5|\u2800|[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\u115f\u3164\uffa0]|\p{Variation_Selector}/u

/**
 * A name that would list as another, or as nothing: blanks before or after it, a run of blanks (which
 * pushes an extension out of sight: `report.csv<28 spaces>.exe`), or only dots and blanks.
 */
const misleading = /^ | $| {2}|^[. ]*$/

/** The path's segments once `.` and empty ones are dropped; none when it has `..`, a backslash or an unprintable character. */
const segments = (path: string): ReadonlyArray<string> | undefined => {
  if (typeof path !== "string" || path.includes("\\") || unprintable.test(path)) return undefined
  const parts = path.split("/").filter((part) => part !== "" && part !== ".")
  return parts.includes("..") ? undefined : parts
}

/** Whether `path` names the partner's folder itself (`/`, `.`, `./`, empty). */
export const isFolder = (path: string): boolean => segments(path)?.length === 0

/** The name of the file `path` names directly in the partner's folder; none for anything else. */
export const fileInFolder = (path: string): string | undefined => {
  const parts = segments(path)
  if (parts === undefined || parts.length !== 1) return undefined
  const name = parts[0]!
  return name.length <= MAX_FILE_NAME && !misleading.test(name) ? name : undefined
}
