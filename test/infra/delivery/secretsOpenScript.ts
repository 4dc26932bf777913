/**
 * Opens the secrets store at `argv[2]` once a line arrives on stdin (so that several processes open it
 * at the same instant), then prints `opened` and exits 0, or prints the failure and exits 1.
 * Used by secretsOpenRace.test.ts.
 */
import { createInterface } from "node:readline"
import { Effect, Layer, Redacted } from "effect"
import { DestinationSecrets } from "../../../domain/delivery/DestinationSecrets.ts"
import { layerSqlite } from "../../../infra/delivery/secretsSqlite.ts"

const open = Effect.gen(function*() {
  yield* DestinationSecrets
}).pipe(Effect.provide(Layer.fresh(layerSqlite({ path: process.argv[2]!, key: Redacted.make(new Uint8Array(32).fill(7)) }))))

console.log("ready")
createInterface({ input: process.stdin }).once("line", () =>
  Effect.runPromise(open).then(
    () => {
      console.log("opened")
      process.exit(0)
    },
    (error: unknown) => {
      console.log(`failed: ${String(error)} ${String((error as { cause?: unknown }).cause ?? "")}`)
      process.exit(1)
    }
  ))
