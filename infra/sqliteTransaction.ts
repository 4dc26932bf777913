/** One transaction on a `node:sqlite` database, shared by the stores that write with plain statements. */
import type { DatabaseSync } from "node:sqlite"

/**
 * Runs `f` in one transaction (BEGIN IMMEDIATE: writers queue on the lock rather than fail late, so a
 * check and the write it allows are one even against another process); rolled back if `f` throws.
 */
export const transaction = <A>(db: DatabaseSync, f: () => A): A => {
  db.exec("BEGIN IMMEDIATE")
  try {
    const result = f()
    db.exec("COMMIT")
    return result
  } catch (error) {
    db.exec("ROLLBACK")
    throw error
  }
}
