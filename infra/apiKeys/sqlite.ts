/**
 * API keys in a SQLite file: only a SHA-256 of each secret is stored; lookups are cached in memory.
 * The bootstrap key's state is a row of the same file, so every process on it agrees at once.
 */
import { createHash, randomBytes } from "node:crypto"
import { DatabaseSync } from "node:sqlite"
import { Clock, Effect, Layer, Option } from "effect"
import { ApiKeys, ApiKeysError, type ApiKey, LastAdminKey } from "../../domain/ApiKeys.ts"
import { transaction } from "../sqliteTransaction.ts"
import { execOnOpen } from "../sqliteOpen.ts"

const cacheMillis = 5_000
const maxCached = 10_000

const hash = (secret: string) => createHash("sha256").update(secret).digest("hex")

interface Row { readonly id: string; readonly name: string; readonly role: string; readonly created_at: string }
const fromRow = (row: Row): ApiKey => ({ id: row.id, name: row.name, role: row.role, createdAt: row.created_at })

export const layerSqlite = (options: { readonly path: string }) =>
  Layer.effect(
    ApiKeys,
    Effect.gen(function*() {
      const db = yield* Effect.acquireRelease(
        Effect.try({
          try: () => {
            // timeout: the busy wait from the first statement on (switching to WAL takes a lock another process starting at the same instant may hold)
            const db = new DatabaseSync(options.path, { timeout: 5_000 })
            execOnOpen(db, `PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;
              CREATE TABLE IF NOT EXISTS api_keys (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL, revoked_at TEXT);
              CREATE TABLE IF NOT EXISTS bootstrap_key (id INTEGER PRIMARY KEY CHECK (id = 1), disabled_at TEXT NOT NULL)`)
            return db
          },
          catch: (cause) => new ApiKeysError({ operation: "open", cause })
        }),
        (db) => Effect.sync(() => db.close())
      )
      const byHash = db.prepare(`SELECT id, name, role, created_at FROM api_keys WHERE hash = ? AND revoked_at IS NULL`)
      const insert = db.prepare(`INSERT INTO api_keys (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)`)
      const all = db.prepare(`SELECT id, name, role, created_at FROM api_keys WHERE revoked_at IS NULL ORDER BY created_at, id`)
      const revoke = db.prepare(`UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`)
      const liveRole = db.prepare(`SELECT role FROM api_keys WHERE id = ? AND revoked_at IS NULL`)
      const liveAdmins = db.prepare(`SELECT count(*) AS n FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL`)
      const bootstrapDisabledAt = db.prepare(`SELECT disabled_at FROM bootstrap_key WHERE id = 1`)
      const disableBootstrap = db.prepare(`INSERT INTO bootstrap_key (id, disabled_at) VALUES (1, ?)`)
      // Every request authenticates: known hashes stay in memory for a few seconds, so a key revoked
      // through another node stops working within that time (this node's revokes clear it at once).
      const cache = new Map<string, { readonly key: ApiKey; readonly until: number }>()
      const use = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: (cause) => new ApiKeysError({ operation, cause }) })
      const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms).toISOString())
      const disabledAt = () => (bootstrapDisabledAt.get() as { disabled_at: string } | undefined)?.disabled_at
      const adminsLeft = () => Number((liveAdmins.get() as { n: number }).n)
      // Disabled is for good: once seen, it is not read again.
      let knownDisabledAt: string | undefined

      return ApiKeys.of({
        authenticate: (secret) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            use("authenticate", () => {
              const h = hash(secret)
              const cached = cache.get(h)
              if (cached !== undefined && cached.until > now) return Option.some(cached.key)
              const row = byHash.get(h) as Row | undefined
              if (row === undefined) {
                cache.delete(h)
                return Option.none()
              }
              const key = fromRow(row)
              if (cache.size >= maxCached) cache.clear()
              cache.set(h, { key, until: now + cacheMillis })
              return Option.some(key)
            })),
        create: ({ name, role }) =>
          Effect.flatMap(now, (createdAt) =>
            use("create", () => {
              const id = randomBytes(8).toString("hex")
              const secret = `trb_${id}_${randomBytes(24).toString("base64url")}`
              insert.run(id, name, role, hash(secret), createdAt)
              return { key: { id, name, role, createdAt }, secret }
            })),
        list: use("list", () => (all.all() as unknown as Array<Row>).map(fromRow)),
        revoke: (id) =>
          Effect.flatMap(now, (at) =>
            use("revoke", () =>
              // a check and the write it allows, as one: another process may revoke or disable at the same instant
              transaction(db, () => {
                const role = (liveRole.get(id) as { role: string } | undefined)?.role
                if (role === undefined) return false
                if (role === "admin" && disabledAt() !== undefined && adminsLeft() <= 1) return "last" as const
                revoke.run(at, id)
                cache.clear()
                return true
              }))).pipe(
              Effect.flatMap((revoked) =>
                revoked === "last"
                  ? Effect.fail(new LastAdminKey({ detail: `${id} is the last admin key and the bootstrap key is disabled: create another admin key first` }))
                  : Effect.succeed(revoked))
            ),
        bootstrap: {
          disabledAt: Effect.suspend(() =>
            knownDisabledAt !== undefined ? Effect.succeed(Option.some(knownDisabledAt)) : use("read bootstrap key", () => {
              knownDisabledAt = disabledAt()
              return Option.fromNullishOr(knownDisabledAt)
            })),
          disable: Effect.flatMap(now, (at) =>
            use("disable bootstrap key", () =>
              transaction(db, () => {
                const already = disabledAt()
                if (already !== undefined) return already
                if (adminsLeft() === 0) return undefined
                disableBootstrap.run(at)
                return at
              }))).pipe(
              Effect.flatMap((at) =>
                at === undefined
                  ? Effect.fail(new LastAdminKey({ detail: "no other live admin key: create one (POST /v1/admin/keys with role admin) before disabling the bootstrap key" }))
                  : Effect.succeed(at))
            )
        }
      })
    })
  )
