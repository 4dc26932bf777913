/**
 * An entity folded to a revision: its decider's state plus what the store recorded about the last
 * event (revision, position, times). The same fold serves the entity actor, the relay, the read
 * model and point-in-time reads, for every decider.
 */
export interface Folded<S = unknown> {
  readonly state: S
  /** revision of the last event applied; -1 before the first */
  readonly revision: number
  /** global position of the last event applied; 0 before the first */
  readonly position: number
  /** when the entity last came into existence (a record deleted and created again starts over) */
  readonly createdAt: string | null
  readonly updatedAt: string | null
}

/** What folding needs of a stored event (a RecordedEvent or an envelope). */
export interface StoredEvent {
  readonly type: string
  readonly data: unknown
  readonly revision: number
  readonly position: number
  readonly recordedAt: string
}
