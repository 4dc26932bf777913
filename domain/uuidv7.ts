import { Clock, Effect } from "effect"

/**
 * UUID v7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, so ids sort by creation time.
 * Pure: the caller passes the time and 10 random bytes.
 */
export const uuidv7 = (unixMillis: number, random: Uint8Array): string => {
  const bytes = new Uint8Array(16)
  let ms = unixMillis
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256
    ms = Math.floor(ms / 256)
  }
  bytes.set(random.subarray(0, 10), 6)
  bytes[6] = 0x70 | (bytes[6]! & 0x0f)
  bytes[8] = 0x80 | (bytes[8]! & 0x3f)
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

// Random bytes drawn 4 KB at a time: one getRandomValues call per id cost more than the rest of the id
// (a CPU profile of the command benchmark). Each id copies its 10 bytes out, so slices are never shared.
const pool = new Uint8Array(4_096)
let drawn = pool.length
const randomBytes = (n: number): Uint8Array => {
  if (drawn + n > pool.length) {
    crypto.getRandomValues(pool)
    drawn = 0
  }
  drawn += n
  return pool.subarray(drawn - n, drawn)
}

/** A new UUID v7 from the Clock (so TestClock drives it) and the platform's cryptographic randomness. */
export const nextUuidv7 = Effect.map(Clock.currentTimeMillis, (now) => uuidv7(now, randomBytes(10)))
