/**
 * Supervision: what happens when an actor's setup or handler fails.
 *
 * The policy is data (Akka-style: supervision wraps a behaviour instead of
 * living inside it). A failing actor restarts after an exponential backoff with
 * jitter; more than `maxRestarts` restarts inside the sliding window `within`
 * means restarting is not helping, so the actor gives up and escalates to its
 * parent through an {@link Escalate} hook. The parent decides: the
 * ActorRegistry drops the actor so the next message starts a fresh incarnation,
 * and a supervisor tree can turn escalations into its own failure with
 * {@link escalationSignal}.
 */
import { Deferred, Duration, Effect, Random, Schema } from "effect"

/** How an actor is restarted, and when it gives up. */
export interface SupervisionPolicy {
  readonly backoff: {
    /** Delay before the first restart in a window. */
    readonly initial: Duration.Input
    /** Upper bound of the doubling delay. */
    readonly max: Duration.Input
    /** Relative spread: a delay d becomes uniform in [d·(1−jitter), d·(1+jitter)]. 0 disables it. */
    readonly jitter: number
  }
  /** Restarts allowed inside `within`; one more escalates. */
  readonly maxRestarts: number
  readonly within: Duration.Input
}

export const defaultPolicy: SupervisionPolicy = {
  backoff: { initial: "100 millis", max: "10 seconds", jitter: 0.2 },
  maxRestarts: 5,
  within: "1 minute"
}

/** An actor gave up after too many restarts; sent to its parent. `cause` is the last failure. */
export class ActorEscalated extends Schema.TaggedError<ActorEscalated>()("ActorEscalated", {
  kind: Schema.String,
  actor: Schema.String,
  restarts: Schema.Number,
  cause: Schema.Defect()
}) {}

/** A parent's handler for a child's escalation. */
export type Escalate = (escalation: ActorEscalated) => Effect.Effect<void>

/** The default parent when none is given: record the escalation in the log. */
export const logEscalation: Escalate = (escalation) =>
  Effect.logError("actor escalated", {
    kind: escalation.kind,
    actor: escalation.actor,
    restarts: escalation.restarts
  })

/** The outcome of one failure. `history` holds the restart times (ms) still inside the window. */
export type RestartDecision =
  | { readonly _tag: "Restart"; readonly delay: Duration.Duration; readonly history: ReadonlyArray<number> }
  | { readonly _tag: "Escalate"; readonly restarts: number }

/**
 * Decides what to do about a failure at `now`, given the times of earlier
 * restarts. The backoff exponent is the number of restarts still inside the
 * window, so a long-healthy actor starts again from `initial`.
 */
export const decide = (
  policy: SupervisionPolicy,
  history: ReadonlyArray<number>,
  now: number
): Effect.Effect<RestartDecision> =>
  Effect.gen(function*() {
    const windowStart = now - Duration.toMillis(policy.within)
    const recent = history.filter((at) => at > windowStart)
    if (recent.length >= policy.maxRestarts) {
      return { _tag: "Escalate", restarts: recent.length } as const
    }
    const delay = yield* backoffDelay(policy, recent.length)
    return { _tag: "Restart", delay, history: [...recent, now] } as const
  })

/** The delay before restart number `attempt` (0-based): initial·2^attempt capped at max, jittered. */
export const backoffDelay = (policy: SupervisionPolicy, attempt: number): Effect.Effect<Duration.Duration> =>
  Effect.gen(function*() {
    const base = Math.min(
      Duration.toMillis(policy.backoff.initial) * 2 ** attempt,
      Duration.toMillis(policy.backoff.max)
    )
    const jitter = Math.max(0, Math.min(1, policy.backoff.jitter))
    // Random (not Math.random) so tests can seed it; the sleep itself goes through Clock.
    const factor = jitter === 0 ? 1 : yield* Random.nextBetween(1 - jitter, 1 + jitter)
    return Duration.millis(Math.round(base * factor))
  })

/**
 * A parent that fails when any child escalates: pass `escalate` to children,
 * and run `failed` in the parent's own fiber (e.g. raced with its work) so the
 * escalation propagates one level up the supervisor tree as a typed failure.
 */
export const escalationSignal: Effect.Effect<{
  readonly escalate: Escalate
  readonly failed: Effect.Effect<never, ActorEscalated>
}> = Effect.map(Deferred.make<never, ActorEscalated>(), (deferred) => ({
  escalate: (escalation) => Effect.asVoid(Deferred.fail(deferred, escalation)),
  failed: Deferred.await(deferred)
}))
