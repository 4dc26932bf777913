/** Starts test/attack9/hostilePartnerProcess.ts in a process of its own (scoped: SIGKILLed on release). */
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"

const entry = fileURLToPath(new URL("./hostilePartnerProcess.ts", import.meta.url))

/** The hostile partner behaving as `behaviour`, its URL and the requests it saw so far. */
export const hostilePartner = (behaviour: string) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly url: string; readonly requests: () => number; readonly kill: () => void }, Error>((resume) => {
      const child = spawn(process.execPath, ["--no-warnings", entry, behaviour], { stdio: ["ignore", "pipe", "inherit"] })
      const kill = () => void child.kill("SIGKILL")
      let requests = 0
      child.once("exit", (code) => resume(Effect.fail(new Error(`hostile partner exited (${code})`))))
      createInterface({ input: child.stdout! }).on("line", (line) => {
        if (line.startsWith("request ")) requests++
        else resume(Effect.succeed({ url: line, requests: () => requests, kill }))
      })
      return Effect.sync(kill)
    }),
    ({ kill }) => Effect.sync(kill)
  )

