/**
 * Destinations' secret headers (DestinationSecrets) in DATA_DIR/delivery-secrets.db (0600), apart from
 * the destination entity, whose history records only their names. Each value is encrypted with
 * AES-256-GCM under its own random 96-bit IV; the destination and header name are its additional
 * data, so a value copied to another row does not decrypt. Each row names the key it was encrypted
 * with (a fingerprint): opening the store with another key fails at once (SecretsError), and a value
 * that does not authenticate is SecretsUndecryptable: never garbage sent to a partner. Each write
 * stamps its rows with the next number of the store's write sequence (`secrets_sequence`), so that a
 * delete's drop can leave what was written after it. Each row names the origin its value was given for
 * (`origin`; none for rows written before stop 28), and a read for an origin answers only its rows.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from "node:crypto"
import { Clock, Effect, Layer, Redacted } from "effect"
import { DestinationSecrets, type SecretsRequest, type SecretsWritten, SecretsError, type SecretHeaders, SecretsUndecryptable } from "../../domain/delivery/DestinationSecrets.ts"
import { CommandIdReused } from "../../domain/entity.ts"
import { openSharedSqlite } from "../ingest/sqliteFile.ts"
import { transaction } from "../sqliteTransaction.ts"

const algorithm = "aes-256-gcm"

/** Names the key without revealing it: the first bytes of a hash of it. */
export const keyFingerprint = (key: Uint8Array): string => createHash("sha256").update("tributary-delivery-secrets\n").update(key).digest("hex").slice(0, 16)

/** Idempotency-Keys each destination's store remembers (SecretsRequest), as an entity remembers command ids. */
const rememberedRequests = 1_024

/** Secret headers as a digest reads them: names lower-cased (as stored), in order; anything else as it is. */
const canonicalHeaders = (fields: unknown): unknown =>
  typeof fields === "object" && fields !== null && !Array.isArray(fields)
    ? Object.entries(fields).map(([name, value]) => [name.toLowerCase(), value] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    : fields ?? null

/** A row as stored, for putting it back. */
interface RawRow {
  readonly name: string
  readonly iv: Uint8Array
  readonly tag: Uint8Array
  readonly ciphertext: Uint8Array
  readonly key_id: string
  readonly updated_at: string
  readonly origin: string | null
}

interface Row {
  readonly name: string
  readonly iv: Uint8Array
  readonly tag: Uint8Array
  readonly ciphertext: Uint8Array
  readonly origin: string | null
}

export const layerSqlite = (options: { readonly path: string; readonly key: Redacted.Redacted<Uint8Array> }) =>
  Layer.effect(
    DestinationSecrets,
    Effect.gen(function*() {
      const fail = (operation: string) => (cause: unknown) => new SecretsError({ operation, cause })
      const key = Redacted.value(options.key)
      if (key.length !== 32) return yield* new SecretsError({ operation: "open", cause: "the key must be 32 bytes (AES-256)" })
      const fingerprint = keyFingerprint(key)
      const db = yield* Effect.acquireRelease(
        Effect.try({
          try: () => {
            const db = openSharedSqlite(options.path)
            // One write transaction: processes opening the file at once take turns. (Before, found by a
            // cluster test failing now and then: two started together both found `written` missing,
            // and the second one's ALTER TABLE failed, so it exited.)
            transaction(db, () => {
              db.exec(`CREATE TABLE IF NOT EXISTS destination_secrets (
                destination TEXT NOT NULL, name TEXT NOT NULL, iv BLOB NOT NULL, tag BLOB NOT NULL, ciphertext BLOB NOT NULL,
                key_id TEXT NOT NULL, updated_at TEXT NOT NULL, written INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (destination, name))`)
              // a file from before the write sequence
              const columns = db.prepare(`PRAGMA table_info(destination_secrets)`).all() as Array<{ readonly name: string }>
              if (!columns.some((c) => c.name === "written")) db.exec(`ALTER TABLE destination_secrets ADD COLUMN written INTEGER NOT NULL DEFAULT 0`)
              // a file from before origins (stop 28): its rows have none
              if (!columns.some((c) => c.name === "origin")) db.exec(`ALTER TABLE destination_secrets ADD COLUMN origin TEXT`)
              db.exec(`CREATE TABLE IF NOT EXISTS secrets_sequence (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
                INSERT OR IGNORE INTO secrets_sequence (id, n) VALUES (1, 0)`)
              // each destination's last write (removals too), which a refused request's undo checks is its own
              db.exec(`CREATE TABLE IF NOT EXISTS secrets_last_write (destination TEXT PRIMARY KEY, written INTEGER NOT NULL) WITHOUT ROWID`)
              // the requests (with an Idempotency-Key) each destination's writes came from (SecretsRequest)
              db.exec(`CREATE TABLE IF NOT EXISTS secrets_requests (destination TEXT NOT NULL, request TEXT NOT NULL, digest TEXT NOT NULL,
                names TEXT NOT NULL, at TEXT NOT NULL, written INTEGER NOT NULL, answer TEXT, PRIMARY KEY (destination, request)) WITHOUT ROWID`)
            })
            return db
          },
          catch: fail("open")
        }),
        (db) => Effect.sync(() => db.close())
      )
      const others = db.prepare(`SELECT count(*) AS n FROM destination_secrets WHERE key_id <> ?`).get(fingerprint) as { readonly n: number }
      if (others.n > 0) {
        return yield* new SecretsError({
          operation: "open",
          cause: `${others.n} stored secret header(s) were encrypted with another key than DELIVERY_SECRETS_KEY (or DATA_DIR/delivery-secrets.key): set the key they were stored with, or delete ${options.path} and set the destinations' secretHeaders again`
        })
      }
      const rows = db.prepare(`SELECT name, iv, tag, ciphertext, origin FROM destination_secrets WHERE destination = ? ORDER BY name`)
      const rowsFor = db.prepare(`SELECT name, iv, tag, ciphertext, origin FROM destination_secrets WHERE destination = ? AND (origin = ? OR origin IS NULL) ORDER BY name`)
      const namesOf = db.prepare(`SELECT name FROM destination_secrets WHERE destination = ? ORDER BY name`)
      const upsert = db.prepare(`INSERT INTO destination_secrets (destination, name, iv, tag, ciphertext, key_id, updated_at, written, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (destination, name) DO UPDATE SET iv = excluded.iv, tag = excluded.tag, ciphertext = excluded.ciphertext, key_id = excluded.key_id,
          updated_at = excluded.updated_at, written = excluded.written, origin = excluded.origin`)
      const removeOtherOrigins = db.prepare(`DELETE FROM destination_secrets WHERE destination = ? AND origin IS NOT NULL AND origin <> ?`)
      const removeOne = db.prepare(`DELETE FROM destination_secrets WHERE destination = ? AND name = ?`)
      const removeAll = db.prepare(`DELETE FROM destination_secrets WHERE destination = ?`)
      const removeUpTo = db.prepare(`DELETE FROM destination_secrets WHERE destination = ? AND written <= ?`)
      const rawRows = db.prepare(`SELECT name, iv, tag, ciphertext, key_id, updated_at, origin FROM destination_secrets WHERE destination = ?`)
      const insertRaw = db.prepare(`INSERT INTO destination_secrets (destination, name, iv, tag, ciphertext, key_id, updated_at, written, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      const lastWrite = db.prepare(`SELECT written FROM secrets_last_write WHERE destination = ?`)
      const setLastWrite = db.prepare(`INSERT OR REPLACE INTO secrets_last_write (destination, written) VALUES (?, ?)`)
      const requestOf = db.prepare(`SELECT digest, names, at, written, answer FROM secrets_requests WHERE destination = ? AND request = ?`)
      // a DELETE's request: no secrets, its bound as `written`
      const rememberDelete = db.prepare(`INSERT OR IGNORE INTO secrets_requests (destination, request, digest, names, at, written) VALUES (?, ?, 'DELETE', '[]', ?, ?)`)
      const setAnswer = db.prepare(`UPDATE secrets_requests SET answer = ? WHERE destination = ? AND request = ?`)
      const remember = db.prepare(`INSERT INTO secrets_requests (destination, request, digest, names, at, written) VALUES (?, ?, ?, ?, ?, ?)`)
      // as many as an entity remembers command ids, each write at least one of them: the store forgets a request after its entity does
      const forgetOldRequests = db.prepare(`DELETE FROM secrets_requests WHERE destination = ? AND written <= (
        SELECT written FROM secrets_requests WHERE destination = ? ORDER BY written DESC LIMIT 1 OFFSET ${rememberedRequests})`)
      const forgetWrite = db.prepare(`DELETE FROM secrets_requests WHERE destination = ? AND written = ? AND digest <> 'DELETE'`)
      const current = db.prepare(`SELECT n FROM secrets_sequence WHERE id = 1`)
      const advance = db.prepare(`UPDATE secrets_sequence SET n = n + 1 WHERE id = 1 RETURNING n`)

      const aad = (destination: string, name: string) => Buffer.from(`${destination}\n${name}`)
      const encrypt = (destination: string, name: string, value: string) => {
        const iv = randomBytes(12)
        const cipher = createCipheriv(algorithm, key, iv).setAAD(aad(destination, name))
        const ciphertext = Buffer.concat([cipher.update(value, "utf8"), cipher.final()])
        return { iv, tag: cipher.getAuthTag(), ciphertext }
      }
      const decrypt = (destination: string, row: Row) =>
        Effect.try({
          try: () => {
            const decipher = createDecipheriv(algorithm, key, row.iv).setAAD(aad(destination, row.name)).setAuthTag(row.tag)
            return Buffer.concat([decipher.update(row.ciphertext), decipher.final()]).toString("utf8")
          },
          catch: () => new SecretsUndecryptable({ destination, header: row.name })
        })
      const use = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: fail(operation) })
      const decryptAll = (destination: string) => (found: ReadonlyArray<Row>) =>
        Effect.map(
          Effect.forEach(found, (row) => Effect.map(decrypt(destination, row), (value) => [row.name, Redacted.make(value)] as const)),
          (entries): SecretHeaders => Object.fromEntries(entries)
        )
      const names = (destination: string) => (namesOf.all(destination) as Array<{ readonly name: string }>).map((r) => r.name)
      const write = (destination: string, replace: boolean, changes: Readonly<Record<string, Redacted.Redacted<string> | null>>, origin: string, request: SecretsRequest | undefined) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.flatMap(use("write secrets", (): SecretsWritten | CommandIdReused => {
            const at = new Date(now).toISOString()
            // encrypted before the transaction: it holds the file's write lock
            const sealed = Object.entries(changes).map(([name, value]) => ({
              name: name.toLowerCase(),
              sealed: value === null ? null : encrypt(destination, name.toLowerCase(), Redacted.value(value))
            }))
            return transaction(db, (): SecretsWritten | CommandIdReused => {
              if (request !== undefined) {
                const earlier = requestOf.get(destination, request.id) as { readonly digest: string; readonly names: string; readonly at: string; readonly written: number; readonly answer: string | null } | undefined
                if (earlier !== undefined) {
                  return earlier.digest === request.digest
                    ? { names: JSON.parse(earlier.names) as Array<string>, written: earlier.written, previous: { rows: [] }, at: earlier.at, replayed: true, answer: earlier.answer ?? undefined }
                    : new CommandIdReused({ commandId: request.id })
                }
              }
              const previous = { rows: rawRows.all(destination) }
              const { n: written } = advance.get() as { readonly n: number }
              setLastWrite.run(destination, written)
              // A write is for one origin: what was given for another goes, never relabelled (the re-attack of
              // stop 28: a patch that gave every row its origin moved a partner's secret, put back by a refused
              // request's undo, onto the attacker's origin). Rows stored before origins stay as they are.
              if (replace) removeAll.run(destination)
              else removeOtherOrigins.run(destination, origin)
              for (const { name, sealed: s } of sealed) {
                if (s === null) removeOne.run(destination, name)
                else upsert.run(destination, name, s.iv, s.tag, s.ciphertext, fingerprint, at, written, origin)
              }
              const now = names(destination)
              if (request !== undefined) {
                remember.run(destination, request.id, request.digest, JSON.stringify(now), at, written)
                forgetOldRequests.run(destination, destination)
              }
              return { names: now, written, previous, at, replayed: false }
            })
          }), (answer) => answer instanceof CommandIdReused ? Effect.fail(answer) : Effect.succeed(answer)))

      return DestinationSecrets.of({
        put: (destination, headers, origin, request) => write(destination, true, headers, origin, request),
        patch: (destination, changes, origin, request) => write(destination, false, changes, origin, request),
        putBack: (destination, { previous, replayed, written }) =>
          use("put secrets back", () =>
            transaction(db, () => {
              if (replayed) return
              // the request did not write them after all: sent again, it writes
              forgetWrite.run(destination, written)
              if ((lastWrite.get(destination) as { readonly written: number } | undefined)?.written !== written) return
              const { n: now } = advance.get() as { readonly n: number }
              setLastWrite.run(destination, now)
              removeAll.run(destination)
              for (const row of previous.rows as ReadonlyArray<RawRow>) {
                insertRaw.run(destination, row.name, row.iv, row.tag, row.ciphertext, row.key_id, row.updated_at, now, row.origin)
              }
            })),
        deleteBound: (destination, request, now) =>
          Effect.flatMap(Clock.currentTimeMillis, (millis) =>
            use("remember a delete", () =>
              transaction(db, () => {
                rememberDelete.run(destination, request, new Date(millis).toISOString(), now)
                const earlier = requestOf.get(destination, request) as { readonly digest: string; readonly written: number }
                // the key of another request: the entity refuses the DELETE (422), and nothing is dropped
                return earlier.digest === "DELETE" ? earlier.written : now
              }))),
        answered: (destination, request, answer) => use("keep a request's answer", () => void setAnswer.run(answer, destination, request)),
        digest: (fields) => createHmac("sha256", key).update(JSON.stringify(canonicalHeaders(fields))).digest("hex").slice(0, 32),
        get: (destination, origin) =>
          Effect.flatMap(use("read secrets", () => rowsFor.all(destination, origin) as unknown as Array<Row>), decryptAll(destination)),
        held: (destination) =>
          Effect.flatMap(use("read secrets", () => rows.all(destination) as unknown as Array<Row>), (found) =>
            Effect.map(decryptAll(destination)(found), (headers) => ({ headers, origin: found.find((row) => row.origin !== null)?.origin ?? undefined }))),
        names: (destination) => use("read secrets", () => names(destination)),
        remove: (destination, writtenUpTo) =>
          // the requests stay: one sent again after the delete is given its answer, and writes nothing
          use("remove secrets", () => void (writtenUpTo === undefined ? removeAll.run(destination) : removeUpTo.run(destination, writtenUpTo))),
        sequence: use("read the secrets' write sequence", () => (current.get() as { readonly n: number }).n)
      })
    })
  )
