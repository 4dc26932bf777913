/**
 * The NATS accounts consumers connect to (nats.conf), apart from the PLATFORM account that holds the
 * platform's streams and KV buckets. Each holds mirrors of the platform streams its users may read,
 * under the same names and with the same sequence numbers, which nats-server keeps in step across
 * the accounts (`mirror.external`). A mirror has no subjects, so nothing a consumer sends (a
 * JetStream API request's reply subject, a push consumer's deliver subject) can land in a stream;
 * and the only subjects of a consumer account that lead into PLATFORM are the ones the mirrors
 * need (creating their consumer on the platform's stream, answering its flow control), which its
 * consumer users may not publish.
 *
 * The embedded server's consumer accounts are filled by the platform at start-up, connecting
 * briefly as each account's admin user; with NATS_URL the operator creates them (README).
 */
import type { StreamConfig } from "@nats-io/jetstream"
import { Effect } from "effect"
import { StreamNames } from "../../domain/subjects.ts"
import { Nats, NatsError } from "./Nats.ts"
import { ensureStream, streamConfigs, type TopologyOptions } from "./topology.ts"

/** An account of consumers, as nats.conf declares it. */
export interface ConsumerAccount {
  /** its name in nats.conf */
  readonly name: string
  /** the platform's own user in it, which creates and updates its mirrors; it has the platform's password */
  readonly admin: string
  /** PLATFORM delivers the mirrors' messages under this prefix, exported to this account alone */
  readonly deliverPrefix: string
  /** the platform streams it mirrors */
  readonly mirrors: ReadonlyArray<string>
}

/** Where a consumer account imports PLATFORM's `$JS.API.CONSUMER.CREATE.<stream>` (and nothing else of its API). */
export const platformApiPrefix = "$JS.platform.API"

/** The consumer accounts of nats.conf; another one is one entry here and one block there. */
export const ConsumerAccounts = {
  /** services and auditors following history and app events (user `reader`) */
  readers: {
    name: "READERS",
    admin: "platform-readers",
    deliverPrefix: "mirror.readers",
    mirrors: [StreamNames.history, StreamNames.snapshots, StreamNames.eventsClean, StreamNames.sessions, StreamNames.alerts]
  }
} as const satisfies Record<string, ConsumerAccount>

/**
 * The account's mirrors: each mirrored stream's own config (retention, per-subject limit), without
 * its subjects, mirroring the platform's stream of the same name. Mirrors keep the original
 * timestamps, so HISTORY's mirror expires its events with HISTORY.
 *
 * No direct get: nats-server 2.9 publishes a direct get's answer on the caller's reply subject as
 * the stream itself, past every user permission, so a reader naming `$JS.API.STREAM.DELETE.<name>`
 * (or PURGE, or CONSUMER.DELETE) as its reply had the account's JetStream run that request: it
 * deleted or purged the mirrors and other readers' durables. Readers get messages through
 * `STREAM.MSG.GET`, whose answers come from the API and run nothing.
 */
export const mirrorConfigs = (account: ConsumerAccount, options: TopologyOptions = {}): ReadonlyArray<StreamConfig> =>
  streamConfigs(options)
    .filter((config) => account.mirrors.includes(config.name))
    .map(({ subjects: _subjects, ...config }) => ({
      ...config,
      allow_direct: false,
      mirror_direct: false,
      description: `Mirror of the platform's ${config.name}, for account ${account.name}`,
      mirror: {
        name: config.name,
        external: { api: platformApiPrefix, deliver: `${account.deliverPrefix}.${config.name.toLowerCase()}` }
      }
    } as StreamConfig))

/** Creates or updates the account's mirrors; the `Nats` connection is the account's admin user's. */
export const ensureMirrors = (account: ConsumerAccount, options: TopologyOptions = {}): Effect.Effect<void, NatsError, Nats> =>
  Effect.forEach(mirrorConfigs(account, options), ensureStream, { discard: true })

export interface ConsumerAccountsOptions {
  readonly url: string
  /** the platform's password, which its admin user of every consumer account shares */
  readonly password: string
  readonly topology?: TopologyOptions
}

/**
 * Creates or updates the mirrors of every consumer account, connected briefly to each as its admin
 * user. Run after `ensureTopology` (a mirror made first waits for its stream, but waits seconds);
 * safe to run at every start and from several processes.
 */
export const ensureConsumerAccounts = (options: ConsumerAccountsOptions): Effect.Effect<void, NatsError> =>
  Effect.forEach(Object.values(ConsumerAccounts), (account) =>
    ensureMirrors(account, options.topology).pipe(
      Effect.provide(Nats.layer({
        url: options.url,
        name: `tributary-${account.admin}-${process.pid}`,
        credentials: { user: account.admin, password: options.password }
      })),
      // e.g. an embedded nats-server still running an older nats.conf, without this account
      Effect.mapError((error) => new NatsError({ operation: `${error.operation} as ${account.admin} (account ${account.name})`, cause: error.cause }))
    ), { discard: true })
