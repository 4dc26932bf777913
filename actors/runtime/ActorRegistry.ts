/**
 * Actors of one kind, keyed by id: the first message for an id starts its
 * actor, an actor idle for `idleTimeout` is passivated (stopped, its scope
 * closed so its finalizers run), and a later message starts a new incarnation.
 *
 * The registry is the supervisor of its actors. It owns their lifetimes
 * through its Scope (closing it is `shutdown`), and it is the parent an actor
 * escalates to: the registry forgets that actor, so the next message for the
 * id starts a fresh incarnation, and passes the escalation on to its own
 * parent (`onEscalate`, see Supervisor.escalationSignal).
 *
 * No message is lost and there is never more than one incarnation per id:
 * every send registers itself on the entry under a lock before it enqueues,
 * passivation happens only under that lock when nothing is registered and the
 * mailbox is empty, and a new incarnation waits until the previous one has
 * fully stopped.
 */
import { Deferred, Duration, Effect, Exit, Scope, Semaphore } from "effect"
import * as Actor from "./Actor.ts"
import type { ActorFailed, ActorRef, AskTimeout, Behavior, MailboxFull } from "./Actor.ts"
import { ActorStopped } from "./Actor.ts"
import * as ActorMetrics from "./ActorMetrics.ts"
import * as Supervisor from "./Supervisor.ts"

export interface ActorRegistry<Msg> {
  /** Sends to the actor `id`, starting it if needed; suspends while its mailbox is full. */
  readonly tell: (id: string, msg: Msg) => Effect.Effect<void, ActorStopped>
  /** Sends to the actor `id`, starting it if needed; fails at once when its mailbox is full. */
  readonly offer: (id: string, msg: Msg) => Effect.Effect<void, MailboxFull | ActorStopped>
  /** Asks the actor `id`, starting it if needed (see ActorRef.ask for the timeout and errors). */
  readonly ask: <A, E>(
    id: string,
    make: (reply: Deferred.Deferred<A, E>) => Msg,
    options?: { readonly timeout?: Duration.Input | undefined }
  ) => Effect.Effect<A, E | AskTimeout | ActorStopped | ActorFailed>
  /** Live actors (not counting ones still stopping). */
  readonly size: Effect.Effect<number>
  /** Stops accepting (sends fail with ActorStopped), drains every mailbox, stops all. Idempotent. */
  readonly shutdown: Effect.Effect<void>
}

export interface Options<Msg, E, R> {
  readonly kind: string
  readonly behavior: (id: string) => Behavior<Msg, E, R>
  readonly mailboxCapacity: number
  readonly idleTimeout: Duration.Input
  /**
   * Live actors kept at most: starting one more first passivates the least recently used idle one.
   * Busy actors are never evicted, so the bound may be exceeded by as many as are busy at once.
   */
  readonly maxActors?: number | undefined
  readonly supervision?: Supervisor.SupervisionPolicy | undefined
  readonly askTimeout?: Duration.Input | undefined
  /** This registry's parent: told when one of its actors gives up. Defaults to logging. */
  readonly onEscalate?: Supervisor.Escalate | undefined
  /** Gets each tell an actor could not handle (Actor.Options.undelivered); defaults to logging it. */
  readonly undelivered?: Actor.Undelivered<Msg> | undefined
}

interface Entry<Msg> {
  ref: ActorRef<Msg> | undefined
  readonly scope: Scope.Closeable
  /** Sends registered on this entry and not finished yet; passivation waits for 0. */
  pending: number
}

type Slot<Msg> =
  | { readonly _tag: "Ready"; readonly entry: Entry<Msg> }
  | { readonly _tag: "Stopping"; readonly stopped: Deferred.Deferred<void> }

/** How many of the least recently used actors a start looks at for an idle one to passivate. */
const EVICTION_CANDIDATES = 8

/** Starts a registry whose actors live at most as long as the current Scope. */
export const make = <Msg, E = never, R = never>(
  options: Options<Msg, E, R>
): Effect.Effect<ActorRegistry<Msg>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<R>()
    const metrics = ActorMetrics.forKind(options.kind)
    const onEscalate = options.onEscalate ?? Supervisor.logEscalation
    const lock = yield* Semaphore.make(1)
    const entries = new Map<string, Entry<Msg>>()
    // Incarnations whose scope is closing: a new one for the same id waits for this.
    const stopping = new Map<string, Deferred.Deferred<void>>()
    let open = true

    // Under the lock: forget the entry and close its scope in the background (the
    // caller may be the actor's own fiber, which the close waits for).
    const retire = (id: string, entry: Entry<Msg>) =>
      Effect.gen(function*() {
        entries.delete(id)
        const stopped = Deferred.makeUnsafe<void>()
        stopping.set(id, stopped)
        yield* Effect.forkDetach(
          Scope.close(entry.scope, Exit.void).pipe(
            Effect.andThen(Effect.sync(() => {
              if (stopping.get(id) === stopped) stopping.delete(id)
            })),
            Effect.andThen(Deferred.succeed(stopped, undefined))
          )
        )
      })

    // Under the lock: passivates the actor if it is idle (nothing registered, waiting or being handled).
    const passivateIfIdle = (id: string, entry: Entry<Msg>): Effect.Effect<boolean> =>
      Effect.gen(function*() {
        if (entries.get(id) !== entry || entry.pending > 0 || entry.ref === undefined) return false
        if (!(yield* entry.ref.idle)) return false
        yield* retire(id, entry)
        yield* ActorMetrics.add(metrics.passivations, 1)
        return true
      })

    const passivate = (id: string, entry: Entry<Msg>): Effect.Effect<boolean> => lock.withPermit(passivateIfIdle(id, entry))

    const escalated = (id: string, entry: Entry<Msg>): Supervisor.Escalate => (escalation) =>
      lock.withPermit(Effect.suspend(() => entries.get(id) === entry ? retire(id, entry) : Effect.void)).pipe(
        Effect.andThen(onEscalate(escalation))
      )

    const start = (id: string) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const entry: Entry<Msg> = { ref: undefined, scope, pending: 0 }
        entry.ref = yield* Actor.make({
          kind: options.kind,
          id,
          behavior: options.behavior(id),
          mailboxCapacity: options.mailboxCapacity,
          supervision: options.supervision,
          askTimeout: options.askTimeout,
          passivation: { idleTimeout: options.idleTimeout, onIdle: passivate(id, entry) },
          onEscalate: escalated(id, entry),
          undelivered: options.undelivered
        }).pipe(Scope.provide(scope), Effect.provideContext(context))
        entries.set(id, entry)
        return entry
      })

    // Registers a send on the entry for `id` (starting the actor if needed), or
    // returns the stopping incarnation to wait for first.
    const acquire = (id: string): Effect.Effect<Slot<Msg>, ActorStopped> =>
      lock.withPermit(Effect.gen(function*() {
        if (!open) return yield* Effect.fail(new ActorStopped({ actor: id }))
        const previous = stopping.get(id)
        if (previous !== undefined) return { _tag: "Stopping", stopped: previous } as const
        let entry = entries.get(id)
        if (entry === undefined) {
          if (options.maxActors !== undefined && entries.size >= options.maxActors) yield* evictLeastRecentlyUsed
          entry = yield* start(id)
        } else {
          // Map order is use order: the least recently used actor comes first.
          entries.delete(id)
          entries.set(id, entry)
        }
        entry.pending++
        return { _tag: "Ready", entry } as const
      }))

    // Under the lock: passivates the least recently used idle actor, if any is idle.
    // Looks at the EVICTION_CANDIDATES least recently used only: when thousands are busy at once (a
    // batch of a shard), a scan of all of them for every new actor would cost O(n²); the bound is then
    // exceeded by the busy ones, as documented on `maxActors`.
    const evictLeastRecentlyUsed = Effect.gen(function*() {
      let looked = 0
      for (const [id, entry] of entries) {
        if (yield* passivateIfIdle(id, entry)) return
        if (++looked >= EVICTION_CANDIDATES) return
      }
    })

    const withActor = <A, E2>(
      id: string,
      use: (ref: ActorRef<Msg>) => Effect.Effect<A, E2>
    ): Effect.Effect<A, E2 | ActorStopped> =>
      Effect.acquireUseRelease(
        acquire(id),
        (slot) =>
          slot._tag === "Ready"
            ? use(slot.entry.ref!)
            : Effect.andThen(Deferred.await(slot.stopped), withActor(id, use)),
        (slot) => Effect.sync(() => slot._tag === "Ready" && slot.entry.pending--)
      )

    const shutdown = Effect.gen(function*() {
      yield* lock.withPermit(Effect.gen(function*() {
        open = false
        for (const [id, entry] of [...entries]) yield* retire(id, entry)
      }))
      yield* Effect.forEach([...stopping.values()], Deferred.await, { discard: true })
    })

    yield* Effect.addFinalizer(() => shutdown)

    return {
      tell: (id, msg) => withActor(id, (ref) => ref.tell(msg)),
      offer: (id, msg) => withActor(id, (ref) => ref.offer(msg)),
      ask: (id, request, askOptions) => withActor(id, (ref) => ref.ask(request, askOptions)),
      size: Effect.sync(() => entries.size),
      shutdown
    }
  })
