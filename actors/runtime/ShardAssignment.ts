/**
 * Which live process should own which shard: rendezvous (highest random weight) hashing. Every
 * process computes the same answer from the same member list, and when a member joins or leaves only
 * the shards it gains or loses move (about shards / members of them), so a joining process takes its
 * share and a dead one's shards spread over all the survivors.
 */

/** A 32-bit hash of member and shard, mixed (FNV-1a, then murmur3's finalizer) so that weights are uniform. */
const weight = (member: string, shard: number): number => {
  const text = `${member}#${shard}`
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** The member that should own `shard` (ties, which need equal hashes, go to the smaller id). */
export const ownerOf = (shard: number, members: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  let bestWeight = -1
  for (const member of members) {
    const w = weight(member, shard)
    if (w > bestWeight || (w === bestWeight && best !== undefined && member < best)) {
      best = member
      bestWeight = w
    }
  }
  return best
}

/** The shards (of 0 … shards-1) that `self` should own among `members`. */
export const shardsOf = (self: string, members: ReadonlyArray<string>, shards: number): ReadonlySet<number> => {
  const all = members.includes(self) ? members : [...members, self]
  const mine = new Set<number>()
  for (let shard = 0; shard < shards; shard++) if (ownerOf(shard, all) === self) mine.add(shard)
  return mine
}
