/** `npm start`: the platform on its embedded defaults, configured by the environment (README). */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Runtime } from "effect"
import { PlatformConfig } from "./config.ts"
import { HttpServer, layer } from "./platform.ts"

const main = Effect.gen(function*() {
  const config = yield* PlatformConfig
  return yield* Layer.launch(
    Layer.effectDiscard(HttpServer.use((server) => Effect.log(`Tributary listening on ${server.url} — docs ${server.url}/docs, metrics ${server.url}/metrics`))).pipe(
      Layer.provideMerge(layer(config))
    )
  )
})

/** Stopped by SIGINT/SIGTERM after draining: a clean exit (0), as service managers expect. */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Runtime.defaultTeardown(exit, (code) => onExit(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? 0 : code))

NodeRuntime.runMain(main, { teardown })
