/**
 * The actor: one fiber that handles the messages of a bounded mailbox strictly
 * one at a time, in mailbox order (the single writer of its state).
 *
 * - `tell` suspends the sender while the mailbox is full: that is the
 *   backpressure, it propagates to whoever feeds the actor.
 * - `offer` never waits: a full mailbox is a typed `MailboxFull`.
 * - `ask` suspends like `tell`; its timeout (default 5 s) covers both the wait
 *   for mailbox space and the wait for the reply, so an ask is bounded in time.
 *   A request that timed out after it was enqueued is still handled; its reply
 *   is dropped.
 * - Every ask gets an answer: the reply, `AskTimeout`, `ActorFailed` when its
 *   handler failed (the actor then restarts, see Supervisor.ts), or
 *   `ActorStopped` when the actor stopped or gave up before handling it.
 * - No tell is dropped silently either: one whose handler failed, and every one
 *   still in the mailbox when the actor gives up, goes to `undelivered` with
 *   that error (the owner answers it or hands it back to its source); a tell
 *   sent after that fails with `ActorStopped`.
 *
 * Lifetime: the actor belongs to the Scope it is made in. Closing that scope
 * stops it gracefully — no new messages are accepted, everything already in the
 * mailbox (including senders suspended on a full mailbox) is handled, then the
 * behaviour's own scope closes so its finalizers run.
 */
import { Cause, Clock, Deferred, Duration, Effect, Exit, Fiber, Option, Queue, Schema, Scope } from "effect"
import * as ActorMetrics from "./ActorMetrics.ts"
import * as Supervisor from "./Supervisor.ts"

/** `offer` found the mailbox full. */
export class MailboxFull extends Schema.TaggedError<MailboxFull>()("MailboxFull", {
  actor: Schema.String,
  capacity: Schema.Number
}) {}

/** No reply within the ask's timeout (which includes waiting for mailbox space). */
export class AskTimeout extends Schema.TaggedError<AskTimeout>()("AskTimeout", {
  actor: Schema.String,
  timeoutMillis: Schema.Number
}) {}

/** The actor is stopping or stopped (shutdown, passivation, or it gave up): the message was not handled. */
export class ActorStopped extends Schema.TaggedError<ActorStopped>()("ActorStopped", {
  actor: Schema.String
}) {}

/** The handler of this very request failed or died; `cause` is the squashed failure. The actor restarts. */
export class ActorFailed extends Schema.TaggedError<ActorFailed>()("ActorFailed", {
  actor: Schema.String,
  cause: Schema.Defect()
}) {}

/** The address of an actor: the only way to talk to it. */
export interface ActorRef<Msg> {
  readonly id: string
  /** Enqueues `msg`, suspending while the mailbox is full. */
  readonly tell: (msg: Msg) => Effect.Effect<void, ActorStopped>
  /** Enqueues `msg` or fails at once with `MailboxFull`. */
  readonly offer: (msg: Msg) => Effect.Effect<void, MailboxFull | ActorStopped>
  /**
   * Builds a request around a fresh reply Deferred, enqueues it like `tell`
   * (suspending while full) and waits for the handler to complete the Deferred.
   */
  readonly ask: <A, E = never>(
    make: (reply: Deferred.Deferred<A, E>) => Msg,
    options?: { readonly timeout?: Duration.Input | undefined }
  ) => Effect.Effect<A, E | AskTimeout | ActorStopped | ActorFailed>
  /** Messages waiting in the mailbox (not counting the one being handled). */
  readonly mailboxSize: Effect.Effect<number>
  /** Nothing waiting and nothing being handled. */
  readonly idle: Effect.Effect<boolean>
}

/** A behaviour: setup (may load state, acquire resources in its Scope) returning the message handler. */
export interface Behavior<Msg, E = never, R = never> {
  (context: { readonly id: string; readonly self: ActorRef<Msg> }): Effect.Effect<
    (msg: Msg) => Effect.Effect<void, E, R>,
    E,
    R | Scope.Scope
  >
}

/** Stops an idle actor: after `idleTimeout` with an empty mailbox the actor asks `onIdle`; `true` stops it. */
export interface Passivation {
  readonly idleTimeout: Duration.Input
  readonly onIdle: Effect.Effect<boolean>
}

export interface Options<Msg, E, R> {
  /** The actor kind, for metrics and logs (e.g. "entity:campaign"). */
  readonly kind: string
  readonly id: string
  readonly behavior: Behavior<Msg, E, R>
  readonly mailboxCapacity: number
  readonly supervision?: Supervisor.SupervisionPolicy | undefined
  /** Default timeout of `ask`; 5 seconds. */
  readonly askTimeout?: Duration.Input | undefined
  readonly passivation?: Passivation | undefined
  /** The parent: told when the actor gives up. Defaults to logging. */
  readonly onEscalate?: Supervisor.Escalate | undefined
  /** Gets each tell the actor could not handle (see the header). Defaults to logging it. */
  readonly undelivered?: Undelivered<Msg> | undefined
}

/** What to do with a told message the actor could not handle: answer it, or give it back to its source. */
export type Undelivered<Msg> = (msg: Msg, error: ActorFailed | ActorStopped) => Effect.Effect<void>

const logUndelivered = (kind: string): Undelivered<unknown> => (_msg, error) =>
  Effect.logWarning("actor could not handle a told message", { kind, actor: error.actor, error: error._tag })

interface Envelope<Msg> {
  readonly msg: Msg
  /** Present for asks: failed so the asker is answered when its message cannot be handled. */
  readonly abort: Deferred.Deferred<never, ActorFailed | ActorStopped> | undefined
}

/** Starts an actor in the current Scope. */
export const make = <Msg, E = never, R = never>(
  options: Options<Msg, E, R>
): Effect.Effect<ActorRef<Msg>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const { id, kind, mailboxCapacity } = options
    const scope = yield* Scope.Scope
    const policy = options.supervision ?? Supervisor.defaultPolicy
    const askTimeout = options.askTimeout ?? "5 seconds"
    const onEscalate = options.onEscalate ?? Supervisor.logEscalation
    const undelivered: Undelivered<Msg> = options.undelivered ?? logUndelivered(kind)
    const metrics = ActorMetrics.forKind(kind)
    const mailbox = yield* Queue.bounded<Envelope<Msg>, Cause.Done>(mailboxCapacity)
    let accepting = true

    const stopped = () => new ActorStopped({ actor: id })
    const enqueued = ActorMetrics.add(metrics.mailboxDepth, 1)

    const enqueue = (envelope: Envelope<Msg>): Effect.Effect<void, ActorStopped> =>
      Effect.suspend(() =>
        accepting
          ? Effect.flatMap(Queue.offer(mailbox, envelope), (ok) => ok ? enqueued : Effect.fail(stopped()))
          : Effect.fail(stopped())
      )

    const ref: ActorRef<Msg> = {
      id,
      tell: (msg) => enqueue({ msg, abort: undefined }),
      offer: (msg) =>
        Effect.suspend((): Effect.Effect<void, MailboxFull | ActorStopped> => {
          if (!accepting) return Effect.fail(stopped())
          if (Queue.offerUnsafe(mailbox, { msg, abort: undefined })) return enqueued
          return Queue.isFullUnsafe(mailbox)
            ? Effect.fail(new MailboxFull({ actor: id, capacity: mailboxCapacity }))
            : Effect.fail(stopped())
        }),
      ask: <A, E2 = never>(
        request: (reply: Deferred.Deferred<A, E2>) => Msg,
        askOptions?: { readonly timeout?: Duration.Input | undefined }
      ) =>
        Effect.gen(function*() {
          const timeout = askOptions?.timeout ?? askTimeout
          const reply = yield* Deferred.make<A, E2>()
          const abort = yield* Deferred.make<never, ActorFailed | ActorStopped>()
          return yield* enqueue({ msg: request(reply), abort }).pipe(
            Effect.andThen(Effect.raceFirst(Deferred.await(reply), Deferred.await(abort))),
            Effect.timeoutOrElse({
              duration: timeout,
              orElse: () => Effect.fail(new AskTimeout({ actor: id, timeoutMillis: Duration.toMillis(timeout) }))
            })
          )
        }),
      mailboxSize: Queue.size(mailbox),
      idle: Effect.map(Queue.size(mailbox), (size) => size === 0 && !handling)
    }

    // Ending the queue keeps what is already in it (and suspended offers) for the loop to drain.
    const beginStop = Effect.suspend(() => {
      accepting = false
      return Queue.end(mailbox)
    })

    // The next message, or None once the mailbox is ended and empty.
    const takeNext: Effect.Effect<Option.Option<Envelope<Msg>>> = Effect.gen(function*() {
      while (true) {
        const next = options.passivation === undefined
          ? yield* Effect.option(Effect.map(Queue.take(mailbox), Option.some))
          : yield* Effect.option(Queue.take(mailbox).pipe(Effect.timeoutOption(options.passivation.idleTimeout)))
        if (Option.isNone(next)) return Option.none() // ended
        if (Option.isSome(next.value)) {
          yield* ActorMetrics.add(metrics.mailboxDepth, -1)
          return next.value
        }
        // Idle for idleTimeout. A take never loses a message when interrupted, and if
        // the parent agrees to stop, anything that raced in is still drained below.
        if (options.passivation !== undefined && (yield* options.passivation.onIdle)) yield* beginStop
      }
    })

    let handling = false
    const handle = (handler: (msg: Msg) => Effect.Effect<void, E, R>, envelope: Envelope<Msg>) =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        handling = true
        const exit = yield* Effect.exit(handler(envelope.msg))
        handling = false
        const elapsed = (yield* Clock.currentTimeMillis) - started
        yield* Effect.all([
          ActorMetrics.add(metrics.processed, 1),
          ActorMetrics.add(metrics.processingSeconds, elapsed / 1000)
        ])
        if (Exit.isFailure(exit)) {
          const error = Cause.hasInterruptsOnly(exit.cause)
            ? stopped()
            : new ActorFailed({ actor: id, cause: Cause.squash(exit.cause) })
          if (envelope.abort !== undefined) yield* Deferred.fail(envelope.abort, error)
          else yield* undelivered(envelope.msg, error)
          return yield* Effect.failCause(exit.cause)
        }
      })

    // One incarnation: setup in a fresh scope, then the loop. Succeeds when the mailbox is drained.
    const incarnation = Effect.scoped(Effect.gen(function*() {
      const handler = yield* options.behavior({ id, self: ref })
      // The message lives only in this callback: a local of the loop would stay in the suspended
      // generator while it waits for the next one, keeping an idle actor's last message (its whole
      // payload) alive for as long as the actor lives.
      const step = Effect.flatMap(takeNext, (next) => Option.isNone(next) ? Effect.succeed(false) : Effect.as(handle(handler, next.value), true))
      let more = true
      while (more) more = yield* step
    }))

    // Gave up: nothing more will be handled, so answer every waiting asker now, and hand every tell to `undelivered`.
    const giveUp = (cause: Cause.Cause<E>, restarts: number) =>
      Effect.gen(function*() {
        yield* beginStop
        while (true) {
          const next = yield* Effect.option(Queue.take(mailbox))
          if (Option.isNone(next)) break
          yield* ActorMetrics.add(metrics.mailboxDepth, -1)
          if (next.value.abort !== undefined) yield* Deferred.fail(next.value.abort, stopped())
          else yield* undelivered(next.value.msg, stopped())
        }
        yield* ActorMetrics.add(metrics.escalations, 1)
        yield* onEscalate(new Supervisor.ActorEscalated({ kind, actor: id, restarts, cause: Cause.squash(cause) }))
      })

    const supervised = Effect.gen(function*() {
      let history: ReadonlyArray<number> = []
      while (true) {
        const exit = yield* Effect.exit(incarnation)
        if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return
        const decision = yield* Supervisor.decide(policy, history, yield* Clock.currentTimeMillis)
        if (decision._tag === "Escalate") return yield* giveUp(exit.cause, decision.restarts)
        history = decision.history
        yield* ActorMetrics.add(metrics.restarts, 1)
        yield* Effect.logWarning("actor restarting", Cause.pretty(exit.cause)).pipe(
          Effect.annotateLogs({ kind, actor: id, delayMillis: Duration.toMillis(decision.delay) })
        )
        yield* Effect.sleep(decision.delay)
      }
    })

    yield* ActorMetrics.add(metrics.liveActors, 1)
    const fiber = yield* Effect.forkIn(supervised, scope)
    // Added after forkIn, so it runs before the scope interrupts the fiber: drain first.
    yield* Scope.addFinalizer(
      scope,
      beginStop.pipe(
        Effect.andThen(Fiber.await(fiber)),
        Effect.andThen(ActorMetrics.add(metrics.liveActors, -1))
      )
    )
    return ref
  })
