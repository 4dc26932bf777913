// A small actor protocol shared by the actor runtime suites: a counter whose
// setup and teardown are recorded, with messages that fail, die or block.
import { Deferred, Effect, Schema } from "effect"
import type { Behavior } from "../../actors/Actor.ts"

export class Boom extends Schema.TaggedError<Boom>()("Boom", {}) {}

export type CounterMsg =
  | { readonly _tag: "Add"; readonly n: number }
  | { readonly _tag: "Get"; readonly reply: Deferred.Deferred<number> }
  | { readonly _tag: "Fail"; readonly reply: Deferred.Deferred<number> | undefined }
  | { readonly _tag: "Die" }
  | { readonly _tag: "Block"; readonly started: Deferred.Deferred<void>; readonly gate: Deferred.Deferred<void> }
  | { readonly _tag: "Silent"; readonly reply: Deferred.Deferred<number> }

export const add = (n: number): CounterMsg => ({ _tag: "Add", n })
export const get = (reply: Deferred.Deferred<number>): CounterMsg => ({ _tag: "Get", reply })
export const fail = (reply?: Deferred.Deferred<number>): CounterMsg => ({ _tag: "Fail", reply })

/** What the actors did, in order, across incarnations. */
export interface Probe {
  readonly events: Array<string>
  readonly added: Array<number>
  live: number
  maxLive: number
  /** When set, teardown waits for it: a slow finalizer (e.g. a flush). */
  stopGate: Deferred.Deferred<void> | undefined
}

export const makeProbe = (): Probe => ({ events: [], added: [], live: 0, maxLive: 0, stopGate: undefined })

export const counterBehavior = (probe: Probe): Behavior<CounterMsg, Boom> => ({ id }) =>
  Effect.gen(function*() {
    probe.events.push(`setup:${id}`)
    probe.live++
    probe.maxLive = Math.max(probe.maxLive, probe.live)
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => probe.stopGate === undefined ? Effect.void : Deferred.await(probe.stopGate)).pipe(
        Effect.andThen(Effect.sync(() => {
          probe.live--
          probe.events.push(`stop:${id}`)
        }))
      )
    )
    let total = 0
    return (msg: CounterMsg) => {
      switch (msg._tag) {
        case "Add":
          return Effect.sync(() => {
            total += msg.n
            probe.added.push(msg.n)
            probe.events.push(`add:${id}:${msg.n}`)
          })
        case "Get":
          return Deferred.succeed(msg.reply, total)
        case "Fail":
          return Effect.fail(new Boom())
        case "Die":
          return Effect.die("crash")
        case "Block":
          return Deferred.succeed(msg.started, undefined).pipe(Effect.andThen(Deferred.await(msg.gate)))
        case "Silent":
          return Effect.void
      }
    }
  })

/** Lets forked fibers (actor loops, queue wake-ups, scope closes) run. */
export const settle = Effect.gen(function*() {
  for (let i = 0; i < 50; i++) yield* Effect.yieldNow
})

/** Starts a Block message's handler and returns the gate that releases it. */
export const block = <E>(send: (msg: CounterMsg) => Effect.Effect<void, E>) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const gate = yield* Deferred.make<void>()
    yield* send({ _tag: "Block", started, gate })
    yield* Deferred.await(started)
    return gate
  })
