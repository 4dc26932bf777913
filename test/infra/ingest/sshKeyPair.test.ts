/**
 * ssh2's ed25519 generator writes about 1 pair in 200-400 that its own parser refuses ("Malformed
 * OpenSSH public key"): a CI run's SFTP test failed on one, and the platform's SFTP host key, generated
 * once and kept, could have been one. `ed25519KeyPair` makes a pair again until both halves parse.
 */
import { assert, describe, it } from "@effect/vitest"
import { ed25519KeyPair, parseSshPublicKey } from "../../../infra/ingest/sshPublicKey.ts"
import ssh2 from "ssh2"

describe("ed25519 key pairs", () => {
  it("are read back by ssh2, both halves, every time (2,000 pairs)", () => {
    for (let i = 0; i < 2_000; i++) {
      const pair = ed25519KeyPair()
      assert.isFalse(ssh2.utils.parseKey(pair.private) instanceof Error, pair.private)
      assert.strictEqual(parseSshPublicKey(pair.public)._tag, "Success", pair.public)
    }
  })
})
