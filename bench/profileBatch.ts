/**
 * 10,000 new user profiles of one shard in one `CommandBus.sendBatch` (one bus message), each an
 * `Apply` of one record, end to end: before (`applies: "actor"`, one EntityActor per profile, the
 * batch committed by BatchCommit) and after (`applies: "batch"`, the shard's ShardBatchApplier), on
 * fresh platforms in this process. Prints commands/s of each and the ratio.
 * `node --experimental-strip-types --no-warnings bench/profileBatch.ts`
 */
import { Context, ConfigProvider, Effect, Layer } from "effect"
import { PlatformConfig } from "../api/config.ts"
import { layer } from "../api/platform.ts"
import { CommandBus } from "../domain/CommandBus.ts"
import type { EntityCommand } from "../domain/entity.ts"
import { deciders } from "../domain/entities/index.ts"
import { userprofile } from "../domain/entities/userprofile.ts"
import { profileId } from "../domain/ingest/LoaderRecord.ts"
import { defaultShards, shardOf } from "../domain/shards.ts"
import { uuidv7 } from "../domain/uuidv7.ts"
import { freePort } from "../infra/nats/NatsServer.ts"
import { BENCH_ADMIN_KEY, benchDir, quietLogs } from "./platform.ts"
import { round2 } from "./stats.ts"

const size = Number(process.env.BENCH_BATCH ?? 10_000)
const newId = () => uuidv7(Date.now(), crypto.getRandomValues(new Uint8Array(10)))

/** `count` cookie profiles of `shard`, named after `run`. */
const profilesOfShard = (shard: number, count: number, run: string) => {
  const ids: Array<string> = []
  for (let i = 0; ids.length < count; i++) {
    const id = profileId("cookie", `${run}-${i}`)
    if (shardOf(id, defaultShards) === shard) ids.push(id)
  }
  return ids
}

const applies = (ids: ReadonlyArray<string>): Array<EntityCommand> => {
  // now: memberships a day from expiring, so no reminder fires during the run
  const time = new Date().toISOString()
  return ids.map((id, i) => {
    const commandId = newId()
    return {
      commandId,
      correlationId: commandId,
      entityType: "userprofile",
      entityId: id,
      action: {
        _tag: "Apply",
        records: [{ segmentId: String(1000 + (i % 3)), op: "add", time, ttlSeconds: 86_400, source: { partner: "bench", jobId: "job", digest: "d", line: i + 1 } }]
      }
    }
  })
}

const run = (mode: "actor" | "batch") =>
  Effect.scoped(Effect.gen(function*() {
    const dataDir = yield* benchDir(`profiles-${mode}`)
    const config = yield* PlatformConfig.parse(ConfigProvider.fromEnvRecord({
      PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, NATS_PORT: String(yield* freePort()), ADMIN_API_KEY: BENCH_ADMIN_KEY, COMMAND_TIMEOUT: "2 minutes"
    }))
    const types = [...deciders.filter((d) => d.type !== "userprofile"), { ...userprofile, applies: mode }]
    const context = yield* Layer.build(layer(config, { deciders: types }).pipe(Layer.provide(quietLogs)))
    const bus = Context.get(context, CommandBus)
    yield* bus.sendBatch(applies(profilesOfShard(1, 1_000, `warm-${mode}`)), { timeout: "2 minutes" })
    const commands = applies(profilesOfShard(2, size, mode))
    const started = performance.now()
    const replies = yield* bus.sendBatch(commands, { timeout: "2 minutes" })
    const seconds = (performance.now() - started) / 1000
    const accepted = replies.filter((r) => r._tag === "Accepted").length
    return { mode, commands: commands.length, accepted, seconds: round2(seconds), perSecond: Math.round(accepted / seconds) }
  }))

export const benchProfileBatch = async () => {
  const before = await Effect.runPromise(run("actor"))
  const after = await Effect.runPromise(run("batch"))
  return { name: "profileBatch", setup: { profiles: size, shard: "one (2 of 64)", command: "userprofile Apply of one record (ttl)" }, before, after, speedup: round2(after.perSecond / before.perSecond) }
}

if (import.meta.main) console.log(JSON.stringify(await benchProfileBatch(), null, 2))
