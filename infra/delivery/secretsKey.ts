/**
 * The key destinations' secret headers are encrypted with: DELIVERY_SECRETS_KEY (base64 of 32 bytes),
 * or, when it is unset, one generated once into DATA_DIR/delivery-secrets.key (0600), so every
 * process on this DATA_DIR and every restart agree on it. A key kept beside the data protects a copy
 * of the database alone, not a copy of DATA_DIR: production sets DELIVERY_SECRETS_KEY.
 */
import { randomBytes } from "node:crypto"
import { join } from "node:path"
import { Effect, Option, Redacted } from "effect"
import { SecretsError } from "../../domain/delivery/DestinationSecrets.ts"
import { keptFile } from "../keptFile.ts"

export const keyFileName = "delivery-secrets.key"

/** Whether `text` is base64 of exactly 32 bytes. */
export const isKey = (text: string): boolean => /^[A-Za-z0-9+/_-]{42,44}={0,2}$/.test(text.trim()) && Buffer.from(text.trim(), "base64").length === 32

export const deliverySecretsKey = (configured: Option.Option<Redacted.Redacted<string>>, dataDir: string) =>
  Effect.try({
    try: () => {
      const text = Option.isSome(configured) ? Redacted.value(configured.value) : keptKey(join(dataDir, keyFileName))
      if (!isKey(text)) throw new Error(Option.isSome(configured) ? "DELIVERY_SECRETS_KEY is not base64 of 32 bytes" : `${keyFileName} is not base64 of 32 bytes`)
      return Redacted.make(new Uint8Array(Buffer.from(text.trim(), "base64")))
    },
    catch: (cause) => new SecretsError({ operation: "read the delivery secrets key", cause })
  })

const keptKey = (file: string) => keptFile(file, () => randomBytes(32).toString("base64"))
