import { assert, describe, it, layer } from "@effect/vitest"
import { createHash, randomBytes } from "node:crypto"
import { readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { Readable } from "node:stream"
import { gzipSync } from "node:zlib"
import { ConfigProvider, Context, Effect, Layer, Option } from "effect"
import { PlatformConfig } from "../../api/config.ts"
import { ed25519KeyPair } from "../../infra/ingest/sshPublicKey.ts"
import { freePort } from "../../infra/nats/NatsServer.ts"
import { ftpLogin, sftpLogin, sftpPut, waitListening } from "../fixtures/fileDoors.ts"
import { createKey, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"
import { tempDir } from "../fixtures/tempDir.ts"

class Doors extends Context.Service<Doors, { readonly ftp: number; readonly sftp: number; readonly dataDir: string }>()("test/Doors") {}

/** The whole platform with both doors on, on free ports, its DATA_DIR known to the test. */
const platform = Layer.unwrap(Effect.gen(function*() {
  const dataDir = yield* tempDir("doors-platform")
  const ftp = yield* freePort()
  const sftp = yield* freePort()
  const passive = yield* freePort()
  return Layer.merge(
    layerTestPlatform({
      DATA_DIR: dataDir,
      FTP_ENABLED: "true",
      FTP_PORT: String(ftp),
      FTP_PASSIVE_PORTS: `${passive}-${passive + 9}`,
      SFTP_ENABLED: "true",
      SFTP_PORT: String(sftp)
    }),
    Layer.succeed(Doors, { ftp, sftp, dataDir })
  )
}))

describe("file doors settings", () => {
  const parse = (env: Record<string, string>) => PlatformConfig.parse(ConfigProvider.fromEnvRecord(env))

  it.effect("have the documented defaults", () =>
    Effect.gen(function*() {
      const { fileDoors } = yield* parse({})
      assert.deepInclude(fileDoors, {
        ftpEnabled: true, ftpPort: 2121, ftpPassivePorts: { min: 30_000, max: 30_063 },
        sftpEnabled: true, sftpPort: 2222, maxSessions: 64, maxSessionsPerPartner: 4
      })
      assert.isTrue(Option.isNone(fileDoors.sftpHostKeyFile) && Option.isNone(fileDoors.ftpPassiveAddress))
    }))

  it.effect("refuse a passive port range that is not one, naming the variable", () =>
    Effect.gen(function*() {
      for (const range of ["30000", "30019-30000", "0-10", "a-b"]) {
        assert.include(String(yield* Effect.flip(parse({ FTP_PASSIVE_PORTS: range }))), "FTP_PASSIVE_PORTS", range)
      }
      assert.deepStrictEqual((yield* parse({ FTP_PASSIVE_PORTS: "40000-40004" })).fileDoors.ftpPassivePorts, { min: 40_000, max: 40_004 })
    }))
})

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

layer(platform, { excludeTestServices: true, timeout: 60_000 })("the platform's file doors", (it) => {
  describe("FTP and SFTP", () => {
    it.effect("take a partner's files with the credentials set through the API, and each becomes a job the partner reads over HTTP", () =>
      Effect.gen(function*() {
        const doors = yield* Doors
        yield* waitListening(doors.ftp)
        yield* waitListening(doors.sftp)
        const created = yield* request({ method: "PUT", url: "/v1/entities/partner/acme", body: { name: "Acme Data" } })
        assert.oneOf(created.statusCode, [200, 201], created.body)
        const keys = ed25519KeyPair()
        const set = yield* request({ method: "PUT", url: "/v1/admin/partners/acme/credentials", body: { password: "acme-door-password", sshPublicKey: keys.public } })
        assert.strictEqual(set.statusCode, 200, set.body)

        const overFtp = gzipSync(randomBytes(256 * 1024))
        const ftp = yield* ftpLogin(doors.ftp, "acme", "acme-door-password")
        yield* Effect.promise(() => ftp.uploadFrom(Readable.from([overFtp]), "monday.csv.gz"))

        // The host key was generated once into DATA_DIR, readable by its owner only, and is the one clients see.
        const hostKeyFile = join(doors.dataDir, "sftp-host.key")
        assert.strictEqual(statSync(hostKeyFile).mode & 0o777, 0o600)
        const overSftp = Buffer.from(`{"idKind":"cookie","userId":"u1","segmentId":"7","op":"add","time":"2026-01-01T00:00:00Z"}\n`)
        const { sftp } = yield* sftpLogin(doors.sftp, readFileSync(hostKeyFile, "utf8"), { username: "acme", privateKey: keys.private })
        assert.strictEqual(yield* sftpPut(sftp, "tuesday.jsonl", overSftp), undefined)

        const partnerKey = yield* createKey("partner:acme")
        const listed = yield* request({ method: "GET", url: "/v1/ingest/acme/jobs", key: partnerKey.secret })
        assert.strictEqual(listed.statusCode, 200, listed.body)
        const jobs = (listed.json() as { readonly jobs: ReadonlyArray<{ readonly id: string; readonly fileName?: string }> }).jobs
        const byName = new Map(jobs.map((job) => [job.fileName, job.id]))
        for (const [name, source, bytes] of [["monday.csv.gz", "ftp", overFtp], ["tuesday.jsonl", "sftp", overSftp]] as const) {
          const res = yield* request({ method: "GET", url: `/v1/ingest/jobs/${byName.get(name)}`, key: partnerKey.secret })
          assert.strictEqual(res.statusCode, 200, res.body)
          assert.deepInclude(res.json() as Record<string, unknown>, { partner: "acme", source, fileName: name, bytes: bytes.length, digest: sha256(bytes) })
        }
      }))
  })
})
