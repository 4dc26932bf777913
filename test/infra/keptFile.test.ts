/**
 * A file generated once (the NATS passwords, the delivery secrets key, the SFTP host key) by processes
 * starting at the same instant: each reads the one kept, whole. With "wx" on the name itself, one
 * could read it still empty: a CI run failed a platform's start with "delivery-secrets.key is not base64
 * of 32 bytes" beside another starting at once. The window is short: against the old way this test
 * failed in about half its runs (10 rounds of 8 processes), never against the new one.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { tempDir } from "../fixtures/tempDir.ts"

const module = fileURLToPath(new URL("../../infra/keptFile.ts", import.meta.url))

/** A process that waits for `at` (epoch ms), then reads or makes `file` with a 64 KiB content of its own and prints what it read. */
const racer = (file: string, at: number) =>
  Effect.callback<string>((resume) => {
    const script = `
      const { keptFile } = await import(${JSON.stringify(module)})
      while (Date.now() < ${at}) {}
      process.stdout.write(keptFile(${JSON.stringify(file)}, () => String(process.pid).repeat(65536).slice(0, 65536)))`
    const child = spawn(process.execPath, ["--no-warnings", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")))
    // "close", not "exit": a child's output may still be on its way when it has exited (under load, a
    // racer read as "" once; stop 28's CI passed it on a retry)
    child.once("close", () => resume(Effect.succeed(out)))
  })

describe("a kept file", () => {
  it.live("made by processes starting at once: every one reads the same whole content, no temporary file left", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("kept-file")
      for (let round = 0; round < 10; round++) {
        const file = join(dir, `secret-${round}`)
        const reads = yield* Effect.forEach(Array.from({ length: 8 }), () => racer(file, Date.now() + 1_500), { concurrency: "unbounded" })
        assert.strictEqual(reads[0]!.length, 65_536)
        for (const read of reads) assert.strictEqual(read, reads[0])
      }
      assert.deepStrictEqual(readdirSync(dir).filter((name) => name.endsWith(".tmp")), [])
    }), { timeout: 60_000 })
})
