/** CPU seconds process `pid` has used so far, all its threads (utime + stime of /proc/<pid>/stat, 100 ticks a second). */
import { readFileSync } from "node:fs"

export const cpuSeconds = (pid: number): number => {
  // the fields after the command's closing parenthesis: state is field 3, utime 14, stime 15
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "").split(" ")
  return (Number(fields[11]) + Number(fields[12])) / 100
}
