/** `npm start`: the platform on its embedded defaults, configured by the environment (README). */
import { Effect, Layer, Logger, References } from "effect"
import { PlatformConfig } from "./config.ts"
import { HttpServer, layer } from "./platform.ts"
import { createPrivately, privateDataDir } from "./privateFiles.ts"
import { runMain } from "./runMain.ts"

const main = Effect.gen(function*() {
  yield* createPrivately
  const config = yield* PlatformConfig
  const logging = Layer.mergeAll(
    Logger.layer([config.logFormat === "json" ? Logger.consoleJson : Logger.consolePretty()]),
    Layer.succeed(References.MinimumLogLevel, config.logLevel)
  )
  yield* privateDataDir(config.dataDir).pipe(Effect.provide(logging))
  return yield* Layer.launch(
    Layer.effectDiscard(HttpServer.use((server) => Effect.log(`Tributary listening on ${server.url} — docs ${server.url}/docs, metrics ${server.url}/metrics`))).pipe(
      Layer.provideMerge(layer(config)),
      Layer.provide(logging)
    )
  )
})

runMain(main)
