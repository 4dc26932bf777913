/**
 * A pid names a process only inside its PID namespace: containers, and processes started under
 * `unshare --pid`, number their own, with the same host name and the same files. Whether another
 * process still runs (`kill(pid, 0)`, `/proc/<pid>`) is therefore asked only of a process of this
 * namespace; of any other, the caller waits for a timeout or asks something that crosses namespaces
 * (a TCP port).
 */
import { createHash } from "node:crypto"
import { readFileSync, readlinkSync } from "node:fs"

/**
 * This process's PID namespace: a digest of the kernel's boot id (one per machine and boot) and the
 * namespace's inode (`/proc/self/ns/pid`, readable without privileges; unique while the machine runs).
 * Undefined where it cannot be read (no /proc): no pid another process wrote down is then trusted.
 */
export const pidNamespace: string | undefined = (() => {
  try {
    return createHash("sha256")
      .update(readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim())
      .update(readlinkSync("/proc/self/ns/pid"))
      .digest("hex")
      .slice(0, 12)
  } catch {
    return undefined
  }
})()

/** Whether `pid`, a process of the PID namespace `namespace`, is certainly gone: never for another namespace's pid. */
export const isGone = (pid: number, namespace: string | undefined): boolean => {
  if (namespace === undefined || namespace !== pidNamespace) return false
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH"
  }
}
