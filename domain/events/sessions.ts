/**
 * One device's sessions (issue 8 item 3), a pure state machine over its deduplicated events in
 * arrival order, by device time:
 *
 * - an event when no session is open starts one (an `open` normally; any event, since the SDK may
 *   start sending mid-session after a reinstall of the SDK's store);
 * - a `close` ends the open session at its time (`endedBy: "close"`);
 * - a `background` followed within `backgroundMs` (30 s) by the next event (a `foreground`) keeps the
 *   session; a longer gap ends it at the background (`"inactivity"`) and the next event starts a new one;
 * - with no close, a session ends at its last event when the next event comes more than
 *   `inactivityMs` later in device time (`"inactivity"`), or, when nothing comes, once `inactivityMs`
 *   of server time passed since it last moved (`expire`, driven by the pipeline's timer: `"reminder"`);
 * - an `open` after the open session's last event ends that one at its last event and starts a new
 *   one; an `open` within the open session's span (its start to its last event) is counted in it, so no
 *   two sessions of a device share a start (their id) or overlap.
 *
 * Late arrivals (device time before the open session's start, or with none open before the newest
 * ended session's end) land in the session whose [start, end] holds their time, among the device's
 * last `maxRecent` sessions: they carry its id in the clean stream, but an ended session is not
 * emitted again (its counts stay as they were when it ended). A late event inside none of those (in a
 * gap between sessions, or older than all that are remembered) belongs to no session: it is a clean
 * event with no `sessionId`, and no session is invented for it.
 */
import type { EventType } from "./SdkEvent.ts"

export interface OpenSession {
  /** device time (ms) of its first event */
  readonly start: number
  /** device time (ms) of its latest event */
  readonly last: number
  /** device time (ms) of a background not followed by any event yet */
  readonly backgroundAt?: number
  /** events in it, by type */
  readonly counts: Readonly<Record<string, number>>
  /** the dimensions of its first event */
  readonly dims: Readonly<Record<string, string>>
  /** server time (ms) it last moved: the reminder ends it `inactivityMs` after this */
  readonly touched: number
}

export interface SessionsState {
  readonly open?: OpenSession | undefined
  /** the device's last ended sessions, [start, end] in device ms, oldest first (at most maxRecent) */
  readonly recent: ReadonlyArray<readonly [number, number]>
}

export const emptySessions: SessionsState = { recent: [] }

export interface SessionOptions {
  readonly inactivityMs: number
  /** default 30 s */
  readonly backgroundMs?: number
  /** default 4 */
  readonly maxRecent?: number
}

export interface Ended {
  readonly start: number
  readonly end: number
  readonly counts: Readonly<Record<string, number>>
  readonly endedBy: "close" | "inactivity" | "reminder"
  readonly dims: Readonly<Record<string, string>>
}

export interface SessionEvent {
  readonly type: EventType
  /** device time, ms */
  readonly time: number
  readonly dims: Readonly<Record<string, string>>
}

export interface Stepped {
  readonly state: SessionsState
  /** the start (device ms) of the session the event belongs to; undefined when it belongs to none */
  readonly session: number | undefined
  /** sessions the event ended */
  readonly ended: ReadonlyArray<Ended>
}

/** A session's id: the device and its start, so it is the same whenever it is computed again. */
export const sessionId = (deviceId: string, start: number): string => `${deviceId}@${start}`

const end = (state: SessionsState, at: number, endedBy: Ended["endedBy"], maxRecent: number): { state: SessionsState; ended: Ended } => {
  const open = state.open!
  const recent = [...state.recent, [open.start, at] as const].slice(-maxRecent)
  return { state: { recent }, ended: { start: open.start, end: at, counts: open.counts, endedBy, dims: open.dims } }
}

const count = (counts: Readonly<Record<string, number>>, type: string) => ({ ...counts, [type]: (counts[type] ?? 0) + 1 })

/** The ended session among the recent ones whose time span holds `time`. */
const recentHolding = (state: SessionsState, time: number) => state.recent.find(([start, stop]) => start <= time && time <= stop)

/** Applies one event (device time) at server time `now`. */
export const step = (state: SessionsState, event: SessionEvent, now: number, options: SessionOptions): Stepped => {
  const backgroundMs = options.backgroundMs ?? 30_000
  const maxRecent = options.maxRecent ?? 4
  const ended: Array<Ended> = []
  let current = state
  const open = current.open
  const newest = current.recent.at(-1)
  const newestEnd = newest?.[1] ?? -Infinity

  // late: before the open session, or (none open) before the newest ended one's end, or at it — but
  // an `open` at that very instant starts the next session (a close and the next open in one
  // millisecond, as clocks of whole seconds write them: before, found by an outside attack, it was
  // counted into the session it followed), unless that one lasted no time (its id would be taken)
  const late = open !== undefined
    ? event.time < open.start
    : event.time < newestEnd || (event.time === newestEnd && (event.type !== "open" || newest![0] === newestEnd))
  if (late) {
    const holder = recentHolding(current, event.time)
    return { state: current, session: holder?.[0], ended }
  }

  if (open !== undefined) {
    const idle = event.time - open.last
    const tooLongInBackground = open.backgroundAt !== undefined && event.time - open.backgroundAt > backgroundMs
    // An open starts another session only after the open one's last event: one at or before it (not before
    // its start: that is late) is counted in it. Before stop 31, an open at the session's very start
    // (a launch event, then the open, in one millisecond) started a second session with the same id, and
    // one within its span a second session overlapping the first (stop 31's outside attack).
    if (idle > options.inactivityMs || tooLongInBackground || (event.type === "open" && event.time > open.last)) {
      // a background too long ends the session at that background (the first of a row), not the later ones
      const done = end(current, tooLongInBackground ? open.backgroundAt! : open.last, "inactivity", maxRecent)
      current = done.state
      ended.push(done.ended)
    } else {
      const counts = count(open.counts, event.type)
      if (event.type === "close") {
        const done = end({ ...current, open: { ...open, counts } }, Math.max(open.last, event.time), "close", maxRecent)
        return { state: done.state, session: open.start, ended: [done.ended] }
      }
      const later = event.time >= open.last
      // a background counts from the first of a row of them: a second one without a foreground between
      // does not restart the 30 s (found by an outside attack: backgrounds at +1 s and +20 s, then a
      // foreground at +45 s, stayed one session)
      const backgroundAt = event.type === "background" ? (open.backgroundAt ?? event.time) : later ? undefined : open.backgroundAt
      const { backgroundAt: _, ...rest } = open
      const next: OpenSession = {
        ...rest,
        counts,
        last: Math.max(open.last, event.time),
        ...(backgroundAt === undefined ? {} : { backgroundAt }),
        touched: now
      }
      return { state: { ...current, open: next }, session: open.start, ended }
    }
  }

  // a new session starts with this event
  const counts = { [event.type]: 1 }
  if (event.type === "close") {
    const done = end({ ...current, open: { start: event.time, last: event.time, counts, dims: event.dims, touched: now } }, event.time, "close", maxRecent)
    return { state: done.state, session: event.time, ended: [...ended, done.ended] }
  }
  const next: OpenSession = {
    start: event.time,
    last: event.time,
    ...(event.type === "background" ? { backgroundAt: event.time } : {}),
    counts,
    dims: event.dims,
    touched: now
  }
  return { state: { ...current, open: next }, session: event.time, ended }
}

/** Ends the open session when nothing moved it for `inactivityMs` of server time (the reminder). */
export const expire = (state: SessionsState, now: number, options: SessionOptions): { state: SessionsState; ended: ReadonlyArray<Ended> } => {
  const open = state.open
  if (open === undefined || now - open.touched < options.inactivityMs) return { state, ended: [] }
  const done = end(state, open.last, "reminder", options.maxRecent ?? 4)
  return { state: done.state, ended: [done.ended] }
}

/** Whether the state has an open session the reminder must look at. */
export const openSince = (state: SessionsState): number | undefined => state.open?.touched
