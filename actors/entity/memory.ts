/**
 * What an entity actor keeps between commands: the entity folded to its last revision, and what its
 * recent commands did (by command id, least recently used first, at most `capacity`), with the bytes
 * that takes (for the process's memory budget, EntityMemory).
 */
import type { EntityRejection } from "../../domain/entity.ts"
import type { Outcome } from "../../domain/Decider.ts"
import type { Folded } from "../../domain/fold.ts"
import { heapBytes, stringBytes } from "./heapBytes.ts"

/** What a command did: small, so many can be remembered; the state is re-read when needed. */
export type Remembered = (
  | { readonly _tag: "Accepted"; readonly outcome: Outcome | "unchanged"; readonly revision: number }
  | { readonly _tag: "Rejected"; readonly error: EntityRejection }
) & { readonly fingerprint: string | undefined }

export interface Memory {
  readonly folded: Folded
  readonly setFolded: (folded: Folded) => void
  readonly remember: (commandId: string, what: Remembered) => void
  readonly recall: (commandId: string) => Remembered | undefined
  /** Takes `older`'s commands as remembered before this one's (activation reads them afterwards). */
  readonly rememberOlder: (older: Memory) => void
  readonly entries: () => IterableIterator<[string, Remembered]>
  readonly bytes: () => number
}

// A remembered command: the Map's entry (key, value, chain and bucket slots), its id, the answer's
// object and fingerprint, and a rejection's error (outcome and tag strings are shared constants).
const entryBytes = (commandId: string, what: Remembered) =>
  32 + stringBytes(commandId) + 56 + (what.fingerprint === undefined ? 0 : stringBytes(what.fingerprint)) +
  (what._tag === "Rejected" ? heapBytes(what.error) : 0)

// What holding an entity costs beyond its state and commands: this Memory's object and its eight
// closures with their contexts, the (empty) Map of recent commands, and the holder's own record, its
// Map entry keyed by the stream name, and its EntityMemory share (two more closures and a Map entry).
// Counted from a heap snapshot of an ingest (15,348 profiles held): about 1.5 KB each, which the
// state alone (a few hundred bytes for a new profile) left out, so the budget held twice its bytes.
export const HOLDING_BYTES = 1_536

export const newMemory = (start: Folded, capacity: number): Memory => {
  let folded = start
  let stateBytes: number | undefined
  let recent = new Map<string, Remembered>()
  let recentBytes = 0
  const drop = (commandId: string) => {
    const old = recent.get(commandId)
    if (old === undefined) return
    recent.delete(commandId)
    recentBytes -= entryBytes(commandId, old)
  }
  const remember = (commandId: string, what: Remembered) => {
    drop(commandId)
    recent.set(commandId, what)
    recentBytes += entryBytes(commandId, what)
    if (recent.size > capacity) drop(recent.keys().next().value!)
  }
  const memory: Memory = {
    get folded() {
      return folded
    },
    setFolded: (next) => {
      folded = next
      stateBytes = undefined
    },
    remember,
    recall: (commandId) => recent.get(commandId),
    rememberOlder: (older) => {
      const newer = recent
      recent = new Map()
      recentBytes = 0
      for (const [commandId, what] of older.entries()) remember(commandId, what)
      for (const [commandId, what] of newer) remember(commandId, what)
    },
    entries: () => recent.entries(),
    // The state's size is measured once per change, when the budget asks.
    bytes: () => HOLDING_BYTES + (stateBytes ??= heapBytes(folded)) + recentBytes
  }
  return memory
}
