/**
 * A file generated once and then kept (a password, a key): `make()`'s content, mode 0600, read by every
 * later caller. Of processes starting at the same instant exactly one's content is kept and nobody reads
 * it half written: it is written to a file of its own first, then linked into place, which fails when the
 * name exists already (with "wx" on the name itself, another process could read it still empty).
 */
import { randomBytes } from "node:crypto"
import { existsSync, linkSync, readFileSync, unlinkSync, writeFileSync } from "node:fs"

export const keptFile = (file: string, make: () => string): string => {
  if (!existsSync(file)) {
    const temp = `${file}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`
    writeFileSync(temp, make(), { mode: 0o600, flag: "wx" })
    try {
      linkSync(temp, file)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    } finally {
      unlinkSync(temp)
    }
  }
  return readFileSync(file, "utf8")
}
