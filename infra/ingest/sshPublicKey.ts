/** An SSH public key as partners give it (an OpenSSH `authorized_keys` line), checked by ssh2's own parser. */
import { Result } from "effect"
import ssh2, { type ParsedKey } from "ssh2"

// ssh2 is CommonJS: Node gives its exports as the default import only.
const { utils } = ssh2

/** Lines of an `authorized_keys` text, without blanks and comments. */
export const keyLines = (text: string): ReadonlyArray<string> =>
  text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0 && !line.startsWith("#"))

/**
 * The key in its canonical form (`<type> <base64> [comment]`), or why it is not a public key ssh2 can
 * verify logins with. A private key is refused: it must never be sent, let alone stored.
 */
export const parseSshPublicKey = (line: string): Result.Result<string, string> => {
  if (line.length > 16_384) return Result.fail("longer than 16 KiB")
  const parsed = utils.parseKey(line)
  const key = Array.isArray(parsed) ? (parsed.length === 1 ? parsed[0] as unknown : new Error("one key per line")) : parsed
  if (key instanceof Error) return Result.fail(`not an OpenSSH public key: ${key.message}`)
  const publicKey = key as ParsedKey
  if (publicKey.isPrivateKey()) return Result.fail("this is a private key: send the public key (the .pub file) only")
  const comment = publicKey.comment.trim()
  return Result.succeed(`${publicKey.type} ${publicKey.getPublicSSH().toString("base64")}${comment === "" ? "" : ` ${comment}`}`)
}

/**
 * An ed25519 key pair ssh2 can read back. ssh2's generator writes about 1 pair in 200-400 with a 31-byte
 * key its own parser refuses ("Malformed OpenSSH public key"): such a pair is made again. The SFTP host
 * key is generated once and kept, so an unreadable one would have kept the door shut for that DATA_DIR.
 */
export const ed25519KeyPair = (options: { readonly comment?: string } = {}): { readonly private: string; readonly public: string } => {
  for (;;) {
    const pair = utils.generateKeyPairSync("ed25519", options)
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error)) return pair
  }
}
