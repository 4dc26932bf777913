/** The entity read model's rows: one shape for current rows (`entities`) and kept snapshots (`entity_snapshots`). */
import type { KeptSnapshot } from "../../domain/snapshot.ts"

export const ENTITY_COLUMNS = `
    type TEXT NOT NULL, id TEXT NOT NULL, revision INTEGER NOT NULL, position INTEGER NOT NULL,
    deleted INTEGER NOT NULL, state TEXT, created_at TEXT, updated_at TEXT, data TEXT NOT NULL`

export interface Row {
  readonly type: string
  readonly id: string
  readonly revision: number
  readonly position: number
  readonly deleted: number
  readonly state: string | null
  readonly created_at: string | null
  readonly updated_at: string | null
  readonly data: string
}

export const fromRow = (row: Row): KeptSnapshot => ({
  type: row.type,
  id: row.id,
  revision: row.revision,
  position: row.position,
  deleted: row.deleted === 1,
  state: row.state === null ? null : JSON.parse(row.state),
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  data: JSON.parse(row.data)
})

/** Without `data`: what answers and listings show. */
export const publicOf = ({ data: _, ...snapshot }: KeptSnapshot) => snapshot

export const toParams = (s: KeptSnapshot) =>
  [s.type, s.id, s.revision, s.position, s.deleted ? 1 : 0, s.state === null ? null : JSON.stringify(s.state), s.createdAt, s.updatedAt, JSON.stringify(s.data)] as const
