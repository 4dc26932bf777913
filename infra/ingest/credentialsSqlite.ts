/**
 * Partners' FTP/SFTP credentials (PartnerCredentials) in DATA_DIR/credentials.db (0600), apart from
 * the partner entity, whose history records only that they changed. A password is kept as scrypt of
 * it with its own random salt (`scrypt$N$r$p$salt$hash`), compared in constant time; verifying for a
 * partner without one costs the same scrypt, so timing tells nothing of who has a password. SSH
 * public keys are checked with ssh2's parser and kept in their canonical OpenSSH form.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto"
import { Clock, Effect, Layer, Redacted, Result } from "effect"
import { CredentialsError, type CredentialsSummary, PartnerCredentials } from "../../domain/ingest/PartnerCredentials.ts"
import { transaction } from "../sqliteTransaction.ts"
import { parseSshPublicKey } from "./sshPublicKey.ts"
import { openSharedSqlite } from "./sqliteFile.ts"

/** scrypt's cost: one of OWASP's equivalent minimums (N = 2^15, r = 8, p = 3): 32 MiB, not 128, a login. */
const params = { N: 32_768, r: 8, p: 3 } as const
const keyLength = 32
const maxmem = 64 * 1024 * 1024

const derive = (password: string, salt: Buffer, p: { readonly N: number; readonly r: number; readonly p: number }) =>
  new Promise<Buffer>((resolve, reject) =>
    scrypt(password, salt, keyLength, { ...p, maxmem }, (error, key) => error ? reject(error) : resolve(key)))

const hashPassword = async (password: string) => {
  const salt = randomBytes(16)
  const key = await derive(password, salt, params)
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString("base64")}$${key.toString("base64")}`
}

/** Compared in constant time; a hash that does not parse matches nothing (after the same work). */
const verify = async (password: string, stored: string | null) => {
  const [scheme, n, r, p, salt, key] = (stored ?? "").split("$")
  const known = scheme === "scrypt" && key !== undefined
  const expected = known ? Buffer.from(key!, "base64") : Buffer.alloc(keyLength)
  const actual = await derive(password, known ? Buffer.from(salt!, "base64") : Buffer.alloc(16), known ? { N: Number(n), r: Number(r), p: Number(p) } : params)
  return known && actual.length === expected.length && timingSafeEqual(actual, expected)
}

interface Row {
  readonly password_hash: string | null
  readonly ssh_keys: string
  readonly updated_at: string
}

export const layerSqlite = (options: { readonly path: string }) =>
  Layer.effect(
    PartnerCredentials,
    Effect.gen(function*() {
      const fail = (operation: string) => (cause: unknown) => new CredentialsError({ operation, cause })
      const db = yield* Effect.acquireRelease(
        Effect.try({
          try: () => {
            const db = openSharedSqlite(options.path)
            db.exec(`CREATE TABLE IF NOT EXISTS partner_credentials (
              partner TEXT PRIMARY KEY, password_hash TEXT, ssh_keys TEXT NOT NULL DEFAULT '[]', updated_at TEXT NOT NULL)`)
            return db
          },
          catch: fail("open")
        }),
        (db) => Effect.sync(() => db.close())
      )
      const byPartner = db.prepare(`SELECT password_hash, ssh_keys, updated_at FROM partner_credentials WHERE partner = ?`)
      const upsert = db.prepare(`INSERT INTO partner_credentials (partner, password_hash, ssh_keys, updated_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (partner) DO UPDATE SET password_hash = excluded.password_hash, ssh_keys = excluded.ssh_keys, updated_at = excluded.updated_at`)
      const remove = db.prepare(`DELETE FROM partner_credentials WHERE partner = ?`)
      const use = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: fail(operation) })
      const row = (partner: string) => byPartner.get(partner) as Row | undefined
      const keysOf = (r: Row | undefined): ReadonlyArray<string> => r === undefined ? [] : JSON.parse(r.ssh_keys) as Array<string>
      const summaryOf = (partner: string, r: Row | undefined): CredentialsSummary => ({
        partner,
        password: r?.password_hash != null,
        sshPublicKeys: keysOf(r).length,
        ...(r === undefined ? {} : { updatedAt: r.updated_at })
      })

      return PartnerCredentials.of({
        set: (partner, change) =>
          Effect.gen(function*() {
            const keys = change.sshPublicKeys === undefined ? undefined : yield* Effect.forEach(change.sshPublicKeys, (line, i) =>
              Result.match(parseSshPublicKey(line), {
                onFailure: (reason) => Effect.fail(new CredentialsError({ operation: "set credentials", cause: `sshPublicKeys[${i}]: ${reason}` })),
                onSuccess: Effect.succeed
              }))
            const hash = change.password === undefined
              ? undefined
              : yield* Effect.tryPromise({ try: () => hashPassword(Redacted.value(change.password!)), catch: fail("hash password") })
            const at = new Date(yield* Clock.currentTimeMillis).toISOString()
            return yield* use("set credentials", () =>
              // read and write as one: another process may change the other credential at the same instant
              transaction(db, () => {
                const before = row(partner)
                upsert.run(partner, hash ?? before?.password_hash ?? null, JSON.stringify(keys ?? keysOf(before)), at)
                return summaryOf(partner, row(partner))
              }))
          }),
        summary: (partner) => use("read credentials", () => summaryOf(partner, row(partner))),
        verifyPassword: (partner, password) =>
          Effect.flatMap(use("read credentials", () => row(partner)?.password_hash ?? null), (stored) =>
            Effect.tryPromise({ try: () => verify(Redacted.value(password), stored), catch: fail("verify password") })),
        sshPublicKeys: (partner) => use("read credentials", () => keysOf(row(partner))),
        remove: (partner) => use("remove credentials", () => void remove.run(partner))
      })
    })
  )
