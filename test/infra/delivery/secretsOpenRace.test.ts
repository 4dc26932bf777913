/**
 * Processes opening one fresh secrets file at the same instant all open it (before, found by a cluster
 * test that failed now and then: two platform processes started together both found the `written`
 * column missing, and the second one's ALTER TABLE failed with "duplicate column name", so it exited).
 */
import { spawn } from "node:child_process"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { tempDir } from "../../fixtures/tempDir.ts"

const script = fileURLToPath(new URL("./secretsOpenScript.ts", import.meta.url))

/** `count` processes, each ready to open `path`; `go` lets them all open it at once and gives each one's last line. */
const openers = (path: string, count: number) =>
  Effect.promise(async () => {
    const children = Array.from({ length: count }, () => spawn(process.execPath, ["--no-warnings", script, path], { stdio: ["pipe", "pipe", "inherit"] }))
    const lines = children.map((child) => createInterface({ input: child.stdout! }))
    await Promise.all(lines.map((rl) => new Promise((resolve) => rl.once("line", resolve))))
    const outcomes = children.map((child, i) => new Promise<string>((resolve) => {
      let last = ""
      lines[i]!.on("line", (line) => (last = line))
      child.once("exit", () => resolve(last))
    }))
    for (const child of children) child.stdin!.write("go\n")
    return Promise.all(outcomes)
  })

it.live("every process opening a fresh secrets file at the same instant opens it", () =>
  Effect.gen(function*() {
    const dir = yield* tempDir("secrets-race")
    for (let round = 0; round < 3; round++) {
      const outcomes = yield* openers(join(dir, `round-${round}.db`), 6)
      assert.deepStrictEqual(outcomes, Array(6).fill("opened"), `round ${round}`)
    }
  }), { timeout: 120_000 })
