/**
 * (c) Commit → HISTORY latency at a steady rate: commands are sent by the clock (open loop, not
 * waiting for answers) through `CommandBus.send`, and a JetStream ordered consumer on HISTORY takes
 * every event; per event, (time received) − (recordedAt in its envelope). The ceiling is the same
 * measurement for raw JetStream: a timestamped message published at the same rate to a file-backed
 * stream on the same nats-server, read by an ordered consumer. The rate is half of the maximum command
 * rate measured by (b) in the same run (`npm run bench` passes it), or BENCH_RATE: a fixed rate is far
 * from saturation on one machine and at it on another.
 */
import { DeliverPolicy, jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import type { NatsConnection } from "@nats-io/transport-node"
import { Context, Effect, Layer } from "effect"
import { NatsAccess } from "../api/platform.ts"
import { CommandBus } from "../domain/CommandBus.ts"
import type { EntityCommand } from "../domain/entity.ts"
import type { EventEnvelope } from "../domain/envelope.ts"
import { uuidv7 } from "../domain/uuidv7.ts"
import { credentials, layerBenchPlatform } from "./platform.ts"
import { closedLoop, latencies, nowMs, round2 } from "./stats.ts"
import type { SummaryRow } from "./summary.ts"

const defaultRate = Number(process.env.BENCH_RATE ?? 1_000)
const seconds = Number(process.env.BENCH_SECONDS ?? 10)
const entities = 200
const targetP99Ms = 50

const newId = () => uuidv7(Date.now(), crypto.getRandomValues(new Uint8Array(10)))
const command = (id: string, name: string, create = false): EntityCommand => {
  const commandId = newId()
  return {
    commandId,
    correlationId: commandId,
    entityType: "advertiser",
    entityId: id,
    action: create ? { _tag: "Put", fields: { name, currency: "USD" } } : { _tag: "Patch", patch: { name } }
  }
}

/**
 * Calls `send(i)` for i in [0, rate × seconds) on the clock: at each tick, as many as the schedule
 * says should have gone by now. Returns the achieved send rate.
 */
const openLoop = async (rate: number, send: (i: number) => void) => {
  const total = Math.round(rate * seconds)
  const started = performance.now()
  let sent = 0
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate))
    while (sent < due) send(sent++)
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  const elapsed = (performance.now() - started) / 1000
  return { sent, seconds: round2(elapsed), perSecond: Math.round(sent / elapsed) }
}

/** An ordered consumer on `stream` from its next message; calls `onMessage` with the receive time. */
const follow = async (nc: NatsConnection, stream: string, onMessage: (data: Uint8Array, receivedAt: number) => void) => {
  const consumer = await jetstream(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.New })
  const messages = await consumer.consume({ max_messages: 4_096 })
  const done = (async () => {
    for await (const m of messages) onMessage(m.data, nowMs())
  })()
  return { stop: async () => { await messages.close(); await done } }
}

/** Waits until `ready()` or `timeoutMs` passes. */
const until = async (ready: () => boolean, timeoutMs: number) => {
  const deadline = performance.now() + timeoutMs
  while (!ready() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
}

const platformRun = (rate: number) => Effect.scoped(Effect.gen(function*() {
  const context = yield* Layer.build(layerBenchPlatform())
  const bus = Context.get(context, CommandBus)
  const nats = Context.get(context, NatsAccess)
  const send = (c: EntityCommand) => Effect.runPromise(bus.send(c))
  const ids = Array.from({ length: entities }, (_, k) => String(5_000_000 + k))
  // create the entities, and warm up, before listening
  yield* Effect.promise(() => closedLoop(entities, 64, (k) => send(command(ids[k]!, "created", true)).then(() => undefined)))

  return yield* Effect.promise(async () => {
    const nc = await connect({ servers: nats.url, name: "bench-history-reader", ...credentials(nats.reader) })
    try {
      const delays: Array<number> = []
      const timed = new Set<string>()
      const follower = await follow(nc, "HISTORY", (data, receivedAt) => {
        const envelope = JSON.parse(new TextDecoder().decode(data)) as EventEnvelope
        if (timed.has(envelope.commandId)) delays.push(receivedAt - Date.parse(envelope.recordedAt))
      })
      const replies: Array<Promise<void>> = []
      const commandLatency: Array<number> = []
      let failed = 0
      let firstFailure: unknown
      const started = performance.now()
      const achieved = await openLoop(rate, (i) => {
        const t0 = performance.now()
        const c = command(ids[i % entities]!, `name ${i}`)
        timed.add(c.commandId)
        replies.push(send(c).then(
          (reply) => {
            if (reply._tag === "Accepted") commandLatency.push(performance.now() - t0)
            else {
              failed++
              firstFailure ??= reply
            }
          },
          (error: unknown) => {
            failed++
            firstFailure ??= String(error)
          }
        ))
      })
      await Promise.all(replies)
      const answered = performance.now()
      await until(() => delays.length >= achieved.sent - failed, 15_000)
      await follower.stop()
      return {
        sent: achieved,
        // sent → last answer: below the send rate means the platform fell behind
        answeredPerSecond: Math.round(commandLatency.length / ((answered - started) / 1000)),
        accepted: commandLatency.length,
        failed,
        ...(firstFailure === undefined ? {} : { firstFailure }),
        commandLatencyMs: latencies(commandLatency),
        historyMessages: delays.length,
        commitToHistoryMs: latencies(delays)
      }
    } finally {
      await nc.close()
    }
  })
}))

/** Raw JetStream at the same rate: publish {sentAt} to a file-backed stream, receive through an ordered consumer. */
const jetStreamRun = (rate: number) => Effect.scoped(Effect.gen(function*() {
  const context = yield* Layer.build(layerBenchPlatform())
  const nats = Context.get(context, NatsAccess)
  return yield* Effect.promise(async () => {
    const nc = await connect({ servers: nats.url, name: "bench-history-ceiling", ...credentials(nats.platform) })
    try {
      const jsm = await jetstreamManager(nc)
      await jsm.streams.add({ name: "BENCH_LATENCY", subjects: ["benchlatency.>"], storage: StorageType.File, num_replicas: 1 })
      const js = jetstream(nc)
      const encoder = new TextEncoder()
      const delays: Array<number> = []
      const follower = await follow(nc, "BENCH_LATENCY", (data, receivedAt) => {
        delays.push(receivedAt - (JSON.parse(new TextDecoder().decode(data)) as { sentAt: number }).sentAt)
      })
      const acks: Array<Promise<unknown>> = []
      const achieved = await openLoop(rate, (i) => {
        acks.push(js.publish(`benchlatency.advertiser.${i % entities}`, encoder.encode(JSON.stringify({ sentAt: nowMs(), i }))))
      })
      await Promise.all(acks)
      await until(() => delays.length >= achieved.sent, 15_000)
      await follower.stop()
      return { sent: achieved, messages: delays.length, publishToReceiveMs: latencies(delays) }
    } finally {
      await nc.close()
    }
  })
}))

/** `maxCommandRate`: the bus's commands/s measured by (b) in the same run; (c) runs at half of it. */
export const benchHistoryLatency = async (maxCommandRate?: number) => {
  const rate = maxCommandRate === undefined ? defaultRate : Math.max(100, Math.round(maxCommandRate / 2))
  const platform = await Effect.runPromise(platformRun(rate))
  const ceiling = await Effect.runPromise(jetStreamRun(rate))
  const p99 = platform.commitToHistoryMs.p99
  const result = {
    name: "historyLatency",
    setup: { rate, rateIs: maxCommandRate === undefined ? "BENCH_RATE" : `half of (b)'s ${maxCommandRate}/s over the bus`, seconds, entities, commands: "PATCH through CommandBus.send, sent by the clock", reader: "ordered consumer on HISTORY", note: "recordedAt has millisecond resolution (truncated), so figures carry up to +1 ms" },
    platform,
    ceiling,
    ratio: round2(ceiling.publishToReceiveMs.p99 / p99),
    target: { p99BelowMs: targetP99Ms, pass: p99 < targetP99Ms }
  }
  const rows: Array<SummaryRow> = [{
    benchmark: `(c) commit → HISTORY at ${platform.sent.perSecond}/s achieved (${maxCommandRate === undefined ? "BENCH_RATE" : `half of (b)'s ${maxCommandRate}/s`})`,
    figure: `p50 ${platform.commitToHistoryMs.p50} ms, p99 ${p99} ms (${platform.historyMessages} events)`,
    ceiling: `raw JetStream publish → receive at ${ceiling.sent.perSecond}/s: p50 ${ceiling.publishToReceiveMs.p50} ms, p99 ${ceiling.publishToReceiveMs.p99} ms`,
    ratio: result.ratio,
    target: `p99 < ${targetP99Ms} ms`,
    pass: result.target.pass
  }]
  return { result, rows }
}

if (import.meta.main) {
  const { result } = await benchHistoryLatency()
  console.log(JSON.stringify(result, null, 2))
}
