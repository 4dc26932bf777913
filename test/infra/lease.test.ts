import { assert, describe, layer } from "@effect/vitest"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect, Fiber, Option, Schedule } from "effect"
import { BucketNames, jobLeaseKey } from "../../domain/subjects.ts"
import { openBucket } from "../../infra/nats/buckets.ts"
import { isHolderId, newHolderId, takeLease, withLease } from "../../infra/nats/lease.ts"
import { tryNats } from "../../infra/nats/Nats.ts"
import { layerTestNats, TestNatsServer } from "../fixtures/nats.ts"

const leaseProcess = fileURLToPath(new URL("../fixtures/leaseProcess.ts", import.meta.url))

/** A job that records while it runs. */
const tracker = () => {
  const state = { running: [] as Array<string>, most: 0, started: [] as Array<string> }
  const job = (who: string) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        state.running.push(who)
        state.started.push(who)
        state.most = Math.max(state.most, state.running.length)
      }),
      () => Effect.sync(() => void state.running.splice(state.running.indexOf(who), 1))
    ).pipe(Effect.andThen(Effect.never), Effect.scoped)
  return { state, job }
}

const until = (check: () => boolean, times = 400) =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail("not yet" as const))).pipe(
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ times })))
  )

/** Holds the job lease `job` in a process of its own (test/fixtures/leaseProcess.ts); SIGKILLed if the test ends first. */
const startHolder = (job: string) =>
  Effect.gen(function*() {
    const { url, platform } = yield* TestNatsServer
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--no-warnings", leaseProcess, url, job], {
          stdio: ["ignore", "pipe", "inherit"],
          env: { ...process.env, NATS_USER: platform.user, NATS_PASSWORD: platform.password }
        })),
      (child) => Effect.sync(() => void child.kill("SIGKILL"))
    )
    const output = { text: "" }
    child.stdout.on("data", (chunk: Buffer) => void (output.text += chunk.toString()))
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
    return { child, output, exited }
  })

/** The value of the lease entry `job.<job>`: its holder, if someone holds it. */
const leaseHolder = (job: string) =>
  Effect.gen(function*() {
    const leases = yield* openBucket(BucketNames.leases)
    const entry = yield* tryNats("read lease", () => leases.get(jobLeaseKey(job)))
    return entry !== null && entry.operation === "PUT" ? Option.some(entry.string()) : Option.none<string>()
  })

layer(layerTestNats(), { excludeTestServices: true, timeout: 60_000 })("lease", (it) => {
  describe("a job that must run once", () => {
    it.effect("runs in one holder at a time; the next takes over when the first gives the lease back", () =>
      Effect.gen(function*() {
        const { state, job } = tracker()
        const a = yield* Effect.forkChild(withLease("one", job("a")))
        yield* until(() => state.running.includes("a"))
        const b = yield* Effect.forkChild(withLease("one", job("b")))
        yield* Effect.sleep("500 millis")
        assert.deepStrictEqual(state.running, ["a"], "b waits")
        yield* Fiber.interrupt(a)
        yield* until(() => state.running.includes("b"))
        assert.strictEqual(state.most, 1)
        yield* Fiber.interrupt(b)
      }))

    it.effect("stops the job when the lease is taken from it, and waits for the lease again", () =>
      Effect.gen(function*() {
        const { state, job } = tracker()
        const a = yield* Effect.forkChild(withLease("two", job("a")))
        yield* until(() => state.running.includes("a"))
        // someone else takes the lease (as after a long pause of a's process)
        const leases = yield* openBucket(BucketNames.leases)
        yield* tryNats("steal", () => leases.put(jobLeaseKey("two"), "thief-4242-abcdef") /* a holder id: other values hold no lease */)
        yield* until(() => state.running.length === 0)
        assert.deepStrictEqual(state.started, ["a"])
        yield* Fiber.interrupt(a)
      }))

    it.effect("is taken at once from a holder of this host and PID namespace whose process is gone, never from a live one, another host's or another namespace's", () =>
      Effect.gen(function*() {
        const leases = yield* openBucket(BucketNames.leases)
        const key = jobLeaseKey("four")
        const gone = spawn(process.execPath, ["-e", ""])
        const goneExit = yield* Effect.promise(() => new Promise<number>((resolve) => gone.once("exit", () => resolve(gone.pid!))))
        const here = newHolderId().replace(/-\d+-([0-9a-f]{6})$/, "")
        const holderOf = (host: string, pid: number) => `${host}-${pid}-abcdef`

        // another host's process cannot be looked at: its lease is left to expire
        yield* tryNats("held elsewhere", () => leases.put(key, holderOf("elsewhere", goneExit)))
        assert.isTrue(Option.isNone(yield* takeLease(leases, key, "me-1-000000")))
        // a pid of another PID namespace (a container with the host's name) or of an id naming none (an
        // earlier version's) cannot be looked at from here: left to expire
        const host = here.replace(/_pidns[0-9a-f]+$/, "")
        assert.notStrictEqual(host, here, `the id names its PID namespace: ${here}`)
        for (const elsewhere of [`${host}_pidns000000000000`, host]) {
          yield* tryNats("held in another namespace", () => leases.put(key, holderOf(elsewhere, goneExit)))
          assert.isTrue(Option.isNone(yield* takeLease(leases, key, "me-1-000000")), elsewhere)
        }
        // a live process of this host (the one that started this test) keeps it
        yield* tryNats("held here", () => leases.put(key, holderOf(here, process.ppid)))
        assert.isTrue(Option.isNone(yield* takeLease(leases, key, "me-1-000000")))
        // a process of this host that is gone (its pid exited above) holds nothing: taken now, not after the TTL
        yield* tryNats("held by the dead", () => leases.put(key, holderOf(here, goneExit)))
        assert.isTrue(Option.isSome(yield* takeLease(leases, key, "me-1-000000")))
        assert.deepStrictEqual(yield* leaseHolder("four"), Option.some("me-1-000000"))
      }))

    it.effect("is taken over when its SIGKILLed holder gave nothing back", () =>
      Effect.gen(function*() {
        const holder = yield* startHolder("three")
        // generous: a process starts slowly on a loaded machine
        yield* until(() => holder.output.text.includes(`running ${holder.child.pid}`), 3_000)
        const held = yield* leaseHolder("three")
        assert.isTrue(Option.isSome(held) && isHolderId(held.value) && held.value.includes(`-${holder.child.pid}-`), `held by the process: ${JSON.stringify(held)}`)

        const { state, job } = tracker()
        const b = yield* Effect.forkChild(withLease("three", job("b")))
        yield* Effect.sleep("500 millis")
        assert.deepStrictEqual(state.started, [], "b waits while the holder lives")

        holder.child.kill("SIGKILL")
        yield* Effect.promise(() => holder.exited)
        // b, asking again, finds the holder's process gone and takes the lease: waited for, with a generous bound
        yield* until(() => state.running.includes("b"), 3_000)
        const taken = yield* leaseHolder("three")
        assert.isTrue(Option.isSome(taken) && taken.value !== held.pipe(Option.getOrElse(() => "")), `b holds it now: ${JSON.stringify(taken)}`)
        assert.strictEqual(state.most, 1)
        yield* Fiber.interrupt(b)
      }), { timeout: 120_000 })
  })
})
