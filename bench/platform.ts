/**
 * The whole platform in this process for a benchmark, configured like production through
 * PlatformConfig: a temp DATA_DIR, the embedded nats-server on a free port, HTTP on a free port of
 * 127.0.0.1. Logs below Warn are dropped so the figures stay readable.
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigProvider, Effect, Layer, References } from "effect"
import { PlatformConfig } from "../api/config.ts"
import { layer } from "../api/platform.ts"
import { freePort, type NatsCredentials } from "../infra/nats/NatsServer.ts"

export const BENCH_ADMIN_KEY = "bench-admin-key-0123456"

/** A temporary directory, removed with everything in it when the scope closes. */
export const benchDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), `tributary-bench-${prefix}-`))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )

/** nats.js connect options for a user of the embedded nats-server. */
export const credentials = (user: NatsCredentials | undefined) => user === undefined ? {} : { user: user.user, pass: user.password }

/** Quiet logs: warnings and errors only. */
export const quietLogs = Layer.succeed(References.MinimumLogLevel, "Warn")

/** The platform from `env` on top of the bench defaults. */
export const layerBenchPlatform = (env: Record<string, string> = {}) =>
  Layer.unwrap(Effect.gen(function*() {
    const dataDir = yield* benchDir("platform")
    const natsPort = yield* freePort()
    const config = yield* PlatformConfig.parse(ConfigProvider.fromEnvRecord({
      PORT: "0",
      HOST: "127.0.0.1",
      DATA_DIR: dataDir,
      NATS_PORT: String(natsPort),
      ADMIN_API_KEY: BENCH_ADMIN_KEY,
      ...env
    }))
    return layer(config)
  })).pipe(Layer.provide(quietLogs))
