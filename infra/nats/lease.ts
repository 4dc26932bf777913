/**
 * Leases on JetStream KV (bucket `tributary-leases`), so that among several processes one at a time
 * does a job: owns a shard, runs the relay, listens on a fixed port (FTP, SFTP). A lease is an entry
 * whose value is its holder: taken with `create` (only if absent), renewed every third of the
 * bucket's TTL with `update` expecting the holder's last revision, given back by deleting it at that
 * revision. A holder that stops renewing (crashed, cut off) loses it when its entry expires, or at once
 * to a process of its own host and PID namespace, which can see that its pid is gone; one that finds its renewal refused
 * stops the job at once. The lease does not fence on its own: between
 * expiry and a paused holder's next renewal both may run, so jobs keep their own last guard (the
 * relay's expected HISTORY sequence, the event store's expected revision).
 */
import type { KV } from "@nats-io/kv"
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import { randomBytes } from "node:crypto"
import { hostname } from "node:os"
import { Duration, Effect, Option } from "effect"
import { ClusterError, type HeldLease, holdWhile, LeaseLost } from "../../domain/Cluster.ts"
import { BucketNames, jobLeaseKey } from "../../domain/subjects.ts"
import { isGone, pidNamespace } from "../pidNamespace.ts"
import { coordinationTtl, openBucket } from "./buckets.ts"

export { LeaseLost } from "../../domain/Cluster.ts"

/** How often a holder renews: a third of the TTL, so two renewals may be lost before it expires. */
export const renewEveryMillis = Duration.toMillis(coordinationTtl) / 3

const wrongSequence = (cause: unknown) =>
  cause instanceof JetStreamApiError &&
  (cause.code === JetStreamApiCodes.StreamWrongLastSequence || cause.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)

const kvCall = <A>(operation: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new ClusterError({ operation, cause }) })

const thisHost = hostname().replace(/[^-\w]/g, "_")

/**
 * Where a pid means something: this host and PID namespace (see pidNamespace.ts). Containers on the
 * host's network share its host name, each with pids of its own.
 */
const thisPlace = pidNamespace === undefined ? thisHost : `${thisHost}_pidns${pidNamespace}`

/**
 * A holder id unique to this process start: `<host>_pidns<namespace>-<pid>-<random>`. Still a holder
 * id to versions that knew only `<host>-<pid>-<random>`, and never a process of their host to them.
 */
export const newHolderId = (): string => `${thisPlace}-${process.pid}-${randomBytes(3).toString("hex")}`

/** Whether a lease entry's value is a holder id (what newHolderId makes, or an earlier version made). */
export const isHolderId = (value: string): boolean => /^[-\w]+-\d+-[0-9a-f]{6}$/.test(value)

/**
 * Whether a holder id names a process that is certainly gone: one of this host and PID namespace whose
 * pid is not running. Any other (another host, another namespace, an id without one) waits for its
 * TTL, as does a recycled pid, which looks alive: the safe side.
 */
export const deadHere = (id: string): boolean => {
  const parts = id.split("-")
  const pid = Number(parts[parts.length - 2])
  const place = parts.slice(0, -2).join("-")
  const namespace = place.startsWith(`${thisHost}_pidns`) ? place.slice(thisHost.length + "_pidns".length) : undefined
  return Number.isSafeInteger(pid) && pid !== process.pid && isGone(pid, namespace)
}

/** The revision of the entry at `key` when it is present and `free(its value)`, else None. */
const revisionIf = (kv: KV, key: string, free: (value: string) => boolean) =>
  Effect.map(kvCall(`read lease ${key}`, () => kv.get(key)), (entry) =>
    entry !== null && entry.operation === "PUT" && free(entry.string()) ? Option.some(entry.revision) : Option.none<number>())

/**
 * An entry whose value is no holder id is junk: a reader's JetStream API request can direct the server's
 * answer onto `$KV.tributary-leases.<key>` (its reply subject), which the bucket stores over the lease.
 * It holds nothing, and is taken over at its revision.
 */
const junkRevision = (kv: KV, key: string) => revisionIf(kv, key, (value) => !isHolderId(value))

/**
 * The revision at which a present entry may be taken: junk (above), or a lease of a process of this host
 * and PID namespace that is gone. A SIGKILLed holder gives nothing back; waiting out the TTL would only leave its work
 * (shards, translators, deliveries) idle for 10 s, and nothing of a dead process can still run.
 */
const vacantRevision = (kv: KV, key: string) => revisionIf(kv, key, (value) => !isHolderId(value) || deadHere(value))

/** `update(key, holder)` at `revision`; None when the entry moved meanwhile. */
const updateAt = (kv: KV, key: string, holder: string, revision: number, operation: string) =>
  Effect.tryPromise({ try: () => kv.update(key, holder, revision), catch: (cause) => cause }).pipe(
    Effect.map(Option.some),
    Effect.catch((cause) =>
      wrongSequence(cause) ? Effect.succeed(Option.none<number>()) : Effect.fail(new ClusterError({ operation, cause })))
  )

/** Takes `key` for `holder` if no one holds it (a dead process of this host and PID namespace holds nothing); None when someone does. */
export const takeLease = (kv: KV, key: string, holder: string): Effect.Effect<Option.Option<HeldLease>, ClusterError> =>
  Effect.gen(function*() {
    const created = yield* Effect.tryPromise({ try: () => kv.create(key, holder), catch: (cause) => cause }).pipe(
      Effect.map(Option.some),
      Effect.catch((cause) =>
        wrongSequence(cause)
          ? Effect.succeed(Option.none<number>())
          : Effect.fail(new ClusterError({ operation: `take lease ${key}`, cause })))
    )
    const taken = Option.isSome(created) ? created : yield* Effect.flatMap(vacantRevision(kv, key), (vacant) =>
      Option.isSome(vacant) ? updateAt(kv, key, holder, vacant.value, `take lease ${key}`) : Effect.succeed(Option.none<number>()))
    if (Option.isNone(taken)) return Option.none()
    let revision = taken.value
    // A renewal refused because the entry is junk now (see junkRevision) keeps the lease over it.
    // Suspended: each renewal expects the revision of the one before it.
    const renew: Effect.Effect<void, LeaseLost | ClusterError> = Effect.suspend(() => updateAt(kv, key, holder, revision, `renew lease ${key}`)).pipe(
      Effect.flatMap((next) =>
        Option.isSome(next) ? Effect.succeed(next) : Effect.flatMap(junkRevision(kv, key), (junk) =>
          Option.isSome(junk) ? updateAt(kv, key, holder, junk.value, `renew lease ${key}`) : Effect.succeed(Option.none<number>()))),
      Effect.flatMap((next) => Option.isSome(next) ? Effect.sync(() => void (revision = next.value)) : Effect.fail(new LeaseLost({ key })))
    )
    // At our last revision only: a lease someone else took meanwhile is theirs to keep.
    const release = kvCall(`release lease ${key}`, () => kv.delete(key, { previousSeq: revision })).pipe(Effect.ignore)
    return Option.some({ key, renew, release })
  })

/**
 * Runs `job` only while holding the lease `job.<name>`, for ever: waits for the lease, runs the job,
 * and when the lease is lost interrupts the job and waits again. Gives the lease back when
 * interrupted. The helper for anything that must run in one process at a time.
 */
export const withLease = <E, R>(name: string, job: Effect.Effect<never, E, R>) =>
  Effect.gen(function*() {
    const kv = yield* openBucket(BucketNames.leases)
    const holder = newHolderId()
    const key = jobLeaseKey(name)

    // Waits while someone else holds it.
    const acquire = Effect.gen(function*() {
      for (;;) {
        const taken = yield* takeLease(kv, key, holder).pipe(
          Effect.tapError((error) => Effect.logWarning(`lease ${name}: could not ask for it`, error)),
          Effect.orElseSucceed(() => Option.none<HeldLease>())
        )
        if (Option.isSome(taken)) return taken.value
        yield* Effect.sleep(renewEveryMillis)
      }
    })

    return yield* Effect.gen(function*() {
      const lease = yield* acquire
      yield* Effect.logInfo(`lease ${name} taken`, { holder })
      return yield* holdWhile(lease, job, renewEveryMillis)
    }).pipe(
      Effect.catchIf(
        (error): error is LeaseLost => error instanceof LeaseLost,
        () => Effect.logWarning(`lease ${name} lost; the job stopped and waits for it again`)
      ),
      Effect.forever
    )
  })

/**
 * Who holds the lease `job.<name>` now, if anyone: its entry lives only while its holder renews it
 * (the bucket's TTL), so a holder named here renewed it within the TTL. For readiness checks.
 */
export const leaseHolder = (name: string) =>
  Effect.gen(function*() {
    const kv = yield* openBucket(BucketNames.leases)
    const entry = yield* kvCall(`read lease ${name}`, () => kv.get(jobLeaseKey(name)))
    return entry !== null && entry.operation === "PUT" && isHolderId(entry.string()) ? Option.some(entry.string()) : Option.none<string>()
  })
