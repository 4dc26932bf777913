/**
 * The command bus's redelivery on a real nats-server: a command a shard holder took and never answered
 * is not lost when that holder dies — after the consumer's ack wait (`redeliverAfter`) JetStream delivers
 * it again on the same durable consumer, still carrying its sender's reply subject.
 */
import { assert, describe, layer } from "@effect/vitest"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { jetstream } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Context, Effect, Fiber, Layer, Schedule } from "effect"
import { CommandBus, type CommandReply } from "../../domain/CommandBus.ts"
import { StreamNames } from "../../domain/subjects.ts"
import { layerJetStream } from "../../infra/nats/commandBus.ts"
import { layerTestNats, TestNatsServer } from "../fixtures/nats.ts"

const holderProcess = fileURLToPath(new URL("../fixtures/shardHolderProcess.ts", import.meta.url))

const until = (check: () => boolean) =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail("not yet" as const))).pipe(
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 1_800 }))) // generous: 90 s
  )

layer(layerTestNats(), { excludeTestServices: true, timeout: 120_000 })("command bus", (it) => {
  describe("redelivery after ack_wait", () => {
    it.effect("a command whose holder took it and died unanswered (SIGKILL) is delivered again on the shard's consumer, and its sender gets the answer", () =>
      Effect.gen(function*() {
        const { url, platform } = yield* TestNatsServer
        const holder = yield* Effect.acquireRelease(
          Effect.sync(() =>
            spawn(process.execPath, ["--no-warnings", holderProcess, url, "3000"], {
              stdio: ["ignore", "pipe", "inherit"],
              env: { ...process.env, NATS_USER: platform.user, NATS_PASSWORD: platform.password }
            })),
          (child) => Effect.sync(() => void child.kill("SIGKILL"))
        )
        const output = { text: "" }
        holder.stdout.on("data", (chunk: Buffer) => void (output.text += chunk.toString()))
        const exited = new Promise<void>((resolve) => holder.once("exit", () => resolve()))
        yield* until(() => output.text.includes(`consuming ${holder.pid}`))

        // the sender: this process's own bus (it only publishes and waits for the answer)
        const bus = Context.get(yield* Layer.build(layerJetStream({ shards: 1 })), CommandBus)
        const command = { commandId: "redelivered-1", correlationId: "redelivered-1", entityType: "advertiser", entityId: "1", action: { _tag: "Delete" } }
        const sending = yield* Effect.forkChild(bus.send(command, { timeout: "100 seconds" }))
        yield* until(() => output.text.includes("took redelivered-1"))
        holder.kill("SIGKILL")
        yield* Effect.promise(() => exited)

        // the same durable consumer, not re-created: only the ack wait brings the command back
        const again = yield* Effect.acquireRelease(
          Effect.promise(() => connect({ servers: url, user: platform.user, pass: platform.password })),
          (nc) => Effect.promise(() => nc.close())
        ).pipe(Effect.flatMap((nc) =>
          Effect.promise(async () => {
            const consumer = await jetstream(nc).consumers.get(StreamNames.commands, "shard-0")
            for (;;) {
              const msg = await consumer.next({ expires: 5_000 })
              if (msg === null) continue
              const reply: CommandReply = { _tag: "Expired", deadline: 1 }
              nc.publish(msg.headers!.get("Tributary-Reply-To"), JSON.stringify(reply))
              msg.ack()
              return { body: msg.json<{ commandId: string }>(), redelivered: msg.info.redelivered, deliveries: msg.info.deliveryCount }
            }
          }))).pipe(Effect.timeoutOrElse({ duration: "45 seconds", orElse: () => Effect.die(new Error("the command was not delivered again within 45 s (its ack wait is 3 s)")) }))
        assert.strictEqual(again.body.commandId, "redelivered-1")
        assert.isTrue(again.redelivered)
        assert.strictEqual(again.deliveries, 2)
        assert.deepStrictEqual(yield* Fiber.join(sending), { _tag: "Expired", deadline: 1 }, "its sender was waiting and got the answer")
      }))
  })
})
