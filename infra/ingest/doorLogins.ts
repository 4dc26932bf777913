/**
 * Who may open a session at the file doors, for FTP and SFTP alike. The login name is the partner
 * id; its password or SSH key is checked against PartnerCredentials. Failed logins are counted per
 * remote address (token bucket: the same limiter as the HTTP edge's failed API keys): each failure
 * is answered only after a pause, and an address that used up its failures is refused without its
 * password even being looked at, so guessing gets no faster than the limit. An address's logins are
 * checked at most two at a time, the others waiting their turn, so that guesses sent all at once meet
 * that limit one after another. Sessions are bounded per partner (one partner cannot take every slot)
 * and overall.
 */
import { Effect, Redacted } from "effect"
import { PartnerCredentials } from "../../domain/ingest/PartnerCredentials.ts"
import { makeKeyedTurns } from "../keyedTurns.ts"

/** Counts failed logins per address (api/rateLimit.ts `makeAuthFailures` is one). */
export interface LoginFailures {
  /** Fails while `address` has used up its failures. */
  readonly check: (address: string) => Effect.Effect<void, { readonly retryAfterSeconds: number }>
  readonly record: (address: string) => Effect.Effect<void>
}

export interface LoginLimits {
  readonly failures: LoginFailures
  /** how long a failed login waits before its answer */
  readonly failureDelayMillis: number
  readonly maxSessions: number
  readonly maxSessionsPerPartner: number
  /**
   * Why a partner whose credentials are right may not log in now (paused, deleted), or undefined.
   * The doors refuse its login with that reason, as the HTTP routes answer 409/404: no new data.
   */
  readonly refusal?: ((partner: string) => Effect.Effect<string | undefined>) | undefined
}

/**
 * Logins of one address checked at once. (Before, found by the outside attack of stop 17: the failure
 * limit is read before a login's slow check and spent after it, so 60 guesses sent at once were all
 * checked: ~123 a minute against the 6 the limit allows.)
 */
const CHECKS_PER_ADDRESS = 2

/** A partner id as API keys and the partner entity spell it. */
const partnerId = /^[a-z0-9][a-z0-9_-]{0,63}$/

export type LoginResult =
  | { readonly _tag: "Accepted"; readonly partner: string }
  | { readonly _tag: "Refused"; readonly reason: string }

/** Sessions open now, per partner; a slot is taken at login and given back when the session ends. */
export const makeDoorLogins = (limits: LoginLimits) => {
  const open = new Map<string, number>()
  const total = { sessions: 0 }
  /** per address: at most CHECKS_PER_ADDRESS logins checked at once */
  const { inTurn } = makeKeyedTurns(CHECKS_PER_ADDRESS)

  const refuse = (address: string, reason: string) =>
    Effect.andThen(limits.failures.record(address), Effect.as(Effect.sleep(limits.failureDelayMillis), { _tag: "Refused", reason } as LoginResult))

  /**
   * Checks a login: `verify` says whether the credential is the partner's. Accepted takes a session
   * slot, to be given back with `release`.
   */
  const login = <E>(
    address: string,
    user: string,
    verify: (partner: string) => Effect.Effect<boolean, E, PartnerCredentials>
  ): Effect.Effect<LoginResult, never, PartnerCredentials> =>
    inTurn(address, Effect.gen(function*() {
      const blocked = yield* limits.failures.check(address).pipe(Effect.as(undefined), Effect.catch((e) => Effect.succeed(e.retryAfterSeconds)))
      if (blocked !== undefined) return { _tag: "Refused", reason: `too many failed logins from this address; try again in ${blocked} s` } as const
      if (!partnerId.test(user)) return yield* refuse(address, "login incorrect")
      const valid = yield* verify(user).pipe(
        Effect.tapError((error) => Effect.logWarning("file doors: credentials could not be checked", error)),
        Effect.orElseSucceed(() => false)
      )
      if (!valid) return yield* refuse(address, "login incorrect")
      const refused = limits.refusal === undefined ? undefined : yield* limits.refusal(user)
      if (refused !== undefined) return { _tag: "Refused", reason: refused } as const
      if (total.sessions >= limits.maxSessions) return { _tag: "Refused", reason: `the server has ${limits.maxSessions} sessions open; try again later` } as const
      const mine = open.get(user) ?? 0
      if (mine >= limits.maxSessionsPerPartner) {
        return { _tag: "Refused", reason: `${user} has ${limits.maxSessionsPerPartner} sessions open already; try again later` } as const
      }
      open.set(user, mine + 1)
      total.sessions += 1
      return { _tag: "Accepted", partner: user } as const
    }))

  /** Gives back the slot an accepted login took. */
  const release = (partner: string) => {
    const mine = (open.get(partner) ?? 1) - 1
    if (mine <= 0) open.delete(partner)
    else open.set(partner, mine)
    total.sessions = Math.max(0, total.sessions - 1)
  }

  const password = (address: string, user: string, secret: string) =>
    login(address, user, (partner) => PartnerCredentials.use((c) => c.verifyPassword(partner, Redacted.make(secret))))

  return { login, password, release, sessions: () => total.sessions }
}

export type DoorLogins = ReturnType<typeof makeDoorLogins>
