/**
 * Device states kept in memory in front of devices.db: an LRU bounded in bytes (DEVICE_MEMORY_BYTES,
 * estimated per entry from its encoded sizes plus a fixed overhead for the key, the Map entry and the
 * objects). An entry changed by a batch that is not committed yet is pinned: evicting it would let
 * the next batch read the older committed state back. Shared by the app pipelines of one process;
 * a pipeline starting drops its app's entries, since another process may have moved them on meanwhile.
 */
import { encodedSize } from "../../domain/events/dedupe.ts"
import type { DeviceState } from "../../domain/events/DeviceStore.ts"

/**
 * Heap bytes of an entry beyond its encoded dedupe state: hex key string, Map entry, entry and state
 * objects, device id (calibrated: 50,000 devices with a closed session each took ~500 bytes of heap
 * apiece); more for an open session (its counts and dims) and per remembered ended session.
 */
const overhead = 420
const perRecentSession = 80
const openSession = 500

interface Entry {
  readonly app: string
  state: DeviceState
  pins: number
  bytes: number
}

const sizeOf = (state: DeviceState) =>
  overhead + encodedSize(state.dedupe) + perRecentSession * state.sessions.state.recent.length +
  (state.sessions.state.open === undefined ? 0 : openSession)

export class DeviceStates {
  private readonly entries = new Map<string, Entry>()
  private total = 0
  readonly maxBytes: number
  constructor(maxBytes: number) {
    this.maxBytes = maxBytes
  }

  get bytes() {
    return this.total
  }
  get size() {
    return this.entries.size
  }

  /** The state of `key`, made the most recently used. */
  get(key: string): DeviceState | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    this.entries.delete(key)
    this.entries.set(key, entry)
    return entry.state
  }

  /** The state of `key`, left where it is in the order: for entries a batch pinned, and made recent, already. */
  peek(key: string): DeviceState | undefined {
    return this.entries.get(key)?.state
  }

  set(app: string, key: string, state: DeviceState) {
    const entry = this.entries.get(key)
    const bytes = sizeOf(state)
    if (entry === undefined) {
      this.entries.set(key, { app, state, pins: 0, bytes })
    } else {
      this.total -= entry.bytes
      entry.state = state
      entry.bytes = bytes
    }
    this.total += bytes
  }

  pin(key: string) {
    const entry = this.entries.get(key)
    if (entry !== undefined) entry.pins++
  }

  unpin(key: string) {
    const entry = this.entries.get(key)
    if (entry !== undefined) entry.pins = Math.max(0, entry.pins - 1)
  }

  /** Evicts the least recently used unpinned entries until within the bound. */
  evict() {
    if (this.total <= this.maxBytes) return
    for (const [key, entry] of this.entries) {
      if (this.total <= this.maxBytes) return
      if (entry.pins > 0) continue
      this.entries.delete(key)
      this.total -= entry.bytes
    }
  }

  /** Forgets every entry of `app` (its pipeline starts: devices.db is the truth). */
  dropApp(app: string) {
    for (const [key, entry] of this.entries) {
      if (entry.app !== app) continue
      this.entries.delete(key)
      this.total -= entry.bytes
    }
  }
}
