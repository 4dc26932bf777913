/**
 * The metadata cache (domain/events/Metadata.ts) in this process, fed from SNAPSHOTS: a miss reads the
 * entity's latest snapshot (`snapshot.<type>.<id>`, a direct get), and a follower per entity type (an
 * ordered consumer of `snapshot.app.*` / `snapshot.campaign.*` from now on) replaces the entries the
 * cache holds as soon as the relay publishes a change, so a change is used within a second, not after
 * a time to live. Kept entries also expire (TIME_TO_LIVE, a safety net should a follower lag). An entity
 * with no snapshot on SNAPSHOTS yet is read from the event store (getEntity), which holds it as soon as
 * its command was answered: the relay publishes its snapshot a moment later, and an SDK sending an app's
 * events right after the app was created was told 404 meanwhile (stop 23). "Does not exist" is kept
 * only briefly.
 *
 * effect's Cache does the rest: a lookup in flight is shared by everyone asking for that key (single
 * flight: 100 concurrent misses load once), and the least recently used entry goes beyond `capacity`.
 * A hit is a lookup whose entry was there (loaded or loading); a miss is a lookup that loaded.
 *
 * "Does not exist" is kept apart, in a bound of its own (a tenth of `capacity`), so that ids that name
 * nothing cannot push out entities that exist: an ad event's campaign id is the SDK's to choose, and
 * an SDK key ships inside its app. (Before stop 28, random campaign ids sent with one app's key filled
 * the one cache with absent entries and evicted every app's and campaign's metadata.)
 */
import { DeliverPolicy, JetStreamApiCodes } from "@nats-io/jetstream"
import { Cache, Clock, Duration, Effect, Exit, Layer, Metric, Option, Schema, Stream } from "effect"
import { AppMeta, CampaignMeta, Metadata, MetadataError } from "../../domain/events/Metadata.ts"
import type { EventStore } from "../../domain/EventStore.ts"
import { EntitySnapshot } from "../../domain/snapshot.ts"
import { snapshotSubject, StreamNames } from "../../domain/subjects.ts"
import type { EntityReadModel } from "../../projections/EntityReadModel.ts"
import { getEntity } from "../../projections/EntityQueries.ts"
import { isApiError } from "../nats/freshConsumer.ts"
import { Nats, tryNats } from "../nats/Nats.ts"
import { consumeScoped } from "../nats/consumeScoped.ts"

export interface MetadataCacheOptions {
  /** entries kept at most (least recently used first out); default 100,000 */
  readonly capacity?: number
  /** how long an entity's metadata is kept without a change seen; default 10 minutes */
  readonly timeToLive?: Duration.Input
  /** how long "no such entity" is kept; default 1 second */
  readonly absentTimeToLive?: Duration.Input
  /** "no such entity" entries kept at most, apart from the others; default a tenth of `capacity` */
  readonly absentCapacity?: number
}

export const metadataCacheHits = Metric.counter("tributary_metadata_cache_hits_total", {
  description: "metadata lookups answered from the in-process cache (an entry present or already loading)",
  incremental: true
})
export const metadataCacheMisses = Metric.counter("tributary_metadata_cache_misses_total", {
  description: "metadata lookups that loaded the entity's snapshot from SNAPSHOTS",
  incremental: true
})

/** The entity types the cache serves, and what of their state it keeps. */
const followed = ["app", "campaign"] as const
type Followed = (typeof followed)[number]

/** An entity's state, as its snapshot shows it; none when it does not exist or was deleted. */
type State = Option.Option<Readonly<Record<string, unknown>>>

const decodeSnapshot = Schema.decodeUnknownOption(Schema.fromJsonString(EntitySnapshot))
const stateOf = (text: string): State =>
  Option.flatMap(decodeSnapshot(text), (snapshot) => snapshot.deleted ? Option.none() : Option.fromNullishOr(snapshot.state))

const decodeApp = Schema.decodeUnknownOption(AppMeta)
const decodeCampaign = Schema.decodeUnknownOption(CampaignMeta)

/** `app.<id>`: the key of an entity, its snapshot subject without `snapshot.`. */
const keyOf = (type: Followed, id: string) => `${type}.${id}`
const typeAndId = (key: string) => {
  const dot = key.indexOf(".")
  return { type: key.slice(0, dot), id: key.slice(dot + 1) }
}

export const make = (options: MetadataCacheOptions = {}) =>
  Effect.gen(function*() {
    const { manager, jetstream } = yield* Nats
    const entities = yield* Effect.context<EventStore | EntityReadModel>()
    const counts = { hits: 0, misses: 0 }
    const timeToLive = Duration.fromInputUnsafe(options.timeToLive ?? "10 minutes")
    const absentTimeToLive = Duration.fromInputUnsafe(options.absentTimeToLive ?? "1 second")

    /** The entity as the event store holds it, for one SNAPSHOTS does not show yet. */
    const stored = (key: string) => {
      const { type, id } = typeAndId(key)
      return getEntity(type, id).pipe(
        Effect.provide(entities),
        Effect.map((snapshot): State => Option.flatMap(snapshot, (s) => Option.fromNullishOr(s.state as Readonly<Record<string, unknown>> | null))),
        Effect.mapError((cause) => new MetadataError({ operation: `load ${key} from the event store`, cause }))
      )
    }

    const load = (key: string) =>
      tryNats("load metadata", () => manager.direct.getMessage(StreamNames.snapshots, { last_by_subj: `snapshot.${key}` })).pipe(
        Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.NoMessageFound), () => Effect.succeed(null)),
        Effect.mapError((error) => new MetadataError({ operation: `load ${key}`, cause: error.cause })),
        Effect.flatMap((message) => message === null ? stored(key) : Effect.succeed(stateOf(message.string()))),
        Effect.tap(() => {
          counts.misses++
          return Metric.update(metadataCacheMisses, 1)
        })
      )

    const capacity = options.capacity ?? 100_000
    const cache = yield* Cache.makeWith(load, {
      capacity,
      // A failed load is not kept: the next lookup tries again. "Does not exist" moves to `absent` once loaded.
      timeToLive: (exit) => Exit.isFailure(exit) ? Duration.zero : Option.isSome(exit.value) ? timeToLive : absentTimeToLive
    })
    /** Keys loaded as "does not exist", with when that lapses; the oldest out beyond its bound. */
    const absent = new Map<string, number>()
    const absentCapacity = Math.max(1, options.absentCapacity ?? Math.ceil(capacity / 10))
    const absentMillis = Duration.toMillis(absentTimeToLive)
    const isAbsent = (key: string, now: number) => {
      const until = absent.get(key)
      if (until === undefined) return false
      if (until > now) return true
      absent.delete(key)
      return false
    }
    const keepAbsent = (key: string, now: number) => {
      absent.delete(key)
      absent.set(key, now + absentMillis)
      if (absent.size > absentCapacity) absent.delete(absent.keys().next().value!)
    }
    const hit = Effect.andThen(Effect.sync(() => counts.hits++), Metric.update(metadataCacheHits, 1))

    const lookup = (key: string): Effect.Effect<State, MetadataError> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        isAbsent(key, now)
          ? Effect.as(hit, Option.none())
          : Effect.flatMap(Cache.has(cache, key), (present) =>
            Effect.tap(present ? Effect.andThen(hit, Cache.get(cache, key)) : Cache.get(cache, key), (state) =>
              Option.isSome(state) ? Effect.void : Effect.andThen(Effect.sync(() => keepAbsent(key, now)), Cache.invalidate(cache, key)))))

    /** Replaces the entry of each changed entity the cache holds (others are loaded when asked for). */
    const follow = (type: Followed) =>
      Effect.gen(function*() {
        const consumer = yield* tryNats(`follow ${type} snapshots`, () =>
          jetstream.consumers.get(StreamNames.snapshots, { filter_subjects: snapshotSubject(type, "*"), deliver_policy: DeliverPolicy.New }))
        const messages = yield* consumeScoped(`follow ${type} snapshots`, () => consumer.consume())
        // Changes missed while no follower ran: forget this type's entries, they load again when asked for.
        yield* invalidateType(type)
        yield* Stream.fromAsyncIterable(messages, (cause) => new MetadataError({ operation: `follow ${type} snapshots`, cause })).pipe(
          Stream.runForEach((message) => {
            const key = message.subject.slice("snapshot.".length)
            // one that did not exist a moment ago does now: found at the next lookup
            absent.delete(key)
            return Effect.flatMap(Cache.has(cache, key), (present) => present ? Cache.set(cache, key, stateOf(message.string())) : Effect.void)
          })
        )
      }).pipe(
        Effect.scoped,
        Effect.tapCause((cause) => Effect.logWarning(`metadata cache: following ${type} snapshots stopped; restarting`, cause)),
        Effect.ignore,
        Effect.andThen(Effect.sleep("1 second"))
      )

    const invalidateType = (type: Followed) =>
      Effect.flatMap(Cache.keys(cache), (keys) => {
        for (const key of absent.keys()) if (key.startsWith(`${type}.`)) absent.delete(key)
        return Effect.forEach([...keys].filter((key) => key.startsWith(`${type}.`)), (key) => Cache.invalidate(cache, key), { discard: true })
      })

    yield* Effect.forEach(followed, (type) => Effect.forkScoped(Effect.forever(follow(type))), { discard: true })

    return Metadata.of({
      app: (appId) => Effect.map(lookup(keyOf("app", appId)), Option.flatMap(decodeApp)),
      campaign: (campaignId) => Effect.map(lookup(keyOf("campaign", campaignId)), Option.flatMap(decodeCampaign)),
      stats: Effect.sync(() => ({ hits: counts.hits, misses: counts.misses }))
    })
  })

/** The metadata cache on the process's NATS connection; its followers stop with the layer. */
export const layer = (options: MetadataCacheOptions = {}) => Layer.effect(Metadata, make(options))
