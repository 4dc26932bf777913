import { assert, describe, it } from "@effect/vitest"
import { ownerOf, shardsOf } from "../../../actors/runtime/ShardAssignment.ts"

const shards = 64
const members = (n: number) => Array.from({ length: n }, (_, i) => `host-${1000 + i}-abcdef`)
const owners = (list: ReadonlyArray<string>) => Array.from({ length: shards }, (_, shard) => ownerOf(shard, list))

describe("ShardAssignment", () => {
  it("gives every shard exactly one owner, the same whatever the order of the member list", () => {
    const list = members(3)
    const mine = list.map((member) => shardsOf(member, list, shards))
    assert.strictEqual(mine.reduce((n, set) => n + set.size, 0), shards)
    assert.deepStrictEqual(owners(list), owners([...list].reverse()))
    for (const set of mine) assert.isAbove(set.size, 0)
  })

  it("moves only the joining member's share when a member joins, and only the leaving one's when it leaves", () => {
    const three = members(3)
    const four = members(4)
    const before = owners(three)
    const after = owners(four)
    const moved = before.filter((owner, shard) => owner !== after[shard])
    assert.isTrue(after.every((owner, shard) => owner === before[shard] || owner === four[3]), "shards move only to the newcomer")
    assert.isAbove(moved.length, 0)
    assert.isBelow(moved.length, shards / 2)
    const two = three.slice(1)
    assert.isTrue(owners(two).every((owner, shard) => before[shard] === three[0] || owner === before[shard]), "only the leaver's shards move")
  })

  it("counts this process among the members even when its own heartbeat is not listed yet", () => {
    const list = members(2)
    const self = "host-9999-000000"
    const mine = shardsOf(self, list, shards)
    const all = [...list, self]
    assert.deepStrictEqual([...mine].sort((a, b) => a - b), owners(all).flatMap((owner, shard) => owner === self ? [shard] : []))
  })
})
