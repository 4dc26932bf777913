/**
 * How slowly an upload may arrive, whatever its door (HTTP, FTP, SFTP): a byte at least every
 * `idleMillis` of waiting, and, past the first `idleMillis`, `minBytesPerSecond` over every window of
 * `idleMillis` of waiting (a sliding window: a fast start banks no credit for a trickle after it).
 */
import { Clock, Effect, Stream } from "effect"

/** How slowly an upload may arrive (UPLOAD_IDLE_TIMEOUT, UPLOAD_MIN_BYTES_PER_SECOND). */
export interface UploadPace {
  readonly idleMillis: number
  /** 0: no minimum */
  readonly minBytesPerSecond: number
}

export const defaultUploadPace: UploadPace = { idleMillis: 30_000, minBytesPerSecond: 16_384 }

/** Bytes received by an instant of waiting time (milliseconds the server waited for the client). */
interface Mark {
  readonly waited: number
  readonly bytes: number
}

/**
 * How long the next wait for the client may last: the idle bound, or less when the bytes of the last
 * `idleMillis` of waiting would fall under the minimum sooner. `marks` (oldest first, at most one a
 * second of waiting) say when the bytes came; the window's start is the first mark past which the
 * bytes received since would be too few, and the wait may last until the window has moved past it.
 */
const allowedWait = (pace: UploadPace, marks: Array<Mark>, bytes: number, waited: number) => {
  const idle = { millis: pace.idleMillis, detail: `no byte of the body arrived for ${pace.idleMillis / 1000} s` }
  if (pace.minBytesPerSecond <= 0) return idle
  const floor = bytes - (pace.minBytesPerSecond * pace.idleMillis) / 1000
  // a mark holding no more than `floor` can never start a short window again: the bytes only grow
  while (marks.length > 0 && marks[0]!.bytes <= floor) marks.shift()
  // before any byte (floor < 0) the window starts at 0; a mark not taken yet (the last second's bytes) starts it now
  const from = floor < 0 ? 0 : marks[0]?.waited ?? waited
  const rate = Math.max(pace.idleMillis, from + pace.idleMillis) - waited
  return rate < pace.idleMillis
    ? { millis: Math.max(0, rate), detail: `the body arrived at under ${pace.minBytesPerSecond} bytes a second over ${pace.idleMillis / 1000} s of waiting` }
    : idle
}

/**
 * `body` failing with `slow(detail)` when its sender is too slow; `received()` counts the bytes as sent.
 * Only the time spent waiting for the sender counts (a pull of `body`): while the reader is busy and
 * the socket fills, the sender is not slow.
 */
export const paced = <E, F>(body: Stream.Stream<Uint8Array, E>, pace: UploadPace, received: () => number, slow: (detail: string) => F): Stream.Stream<Uint8Array, E | F> => {
  let waited = 0
  const marks: Array<Mark> = []
  return Stream.transformPull(body, (pull) =>
    Effect.succeed(Effect.gen(function*() {
      const bytes = received()
      // every byte counted so far came by now (no waiting passes between two pulls); later than they
      // came at most by a second, which only lets the window start later
      const last = marks.at(-1)
      if (bytes > (last?.bytes ?? 0) && (last === undefined || waited - last.waited >= 1_000)) marks.push({ waited, bytes })
      const allowed = allowedWait(pace, marks, bytes, waited)
      const start = yield* Clock.currentTimeMillis
      const chunks = yield* pull.pipe(Effect.timeoutOrElse({
        duration: allowed.millis,
        orElse: () => Effect.fail(slow(allowed.detail))
      }))
      waited += (yield* Clock.currentTimeMillis) - start
      return chunks
    })))
}
