/**
 * DATA_DIR holds what no other local user may read: the NATS passwords, the API keys' hashes, every
 * event. The process creates its files 0600 and directories 0700 (a umask, inherited by the
 * nats-server it spawns), and DATA_DIR itself is made 0700 also when it existed before.
 */
import { chmodSync, mkdirSync } from "node:fs"
import { Effect } from "effect"

/** Files this process (and the processes it starts) creates from now on are its user's alone. */
export const createPrivately = Effect.sync(() => void process.umask(0o077))

/** Creates `dir` if missing and makes it 0700; a directory it may not change is only warned about. */
export const privateDataDir = (dir: string) =>
  Effect.try(() => {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    chmodSync(dir, 0o700)
  }).pipe(Effect.catch((error) => Effect.logWarning(`DATA_DIR ${dir} could not be made private (0700)`, String(error.cause))))
