/**
 * stillAsChecked (domain/entity.ts): a command checked at one revision goes on at another only when every
 * field its checks read holds the value they read (absent and null alike, whatever the order of keys).
 */
import { assert, describe, it } from "@effect/vitest"
import { stillAsChecked } from "../../domain/entity.ts"

const fields = { lanes: 2, segmentIds: ["101", "102"], url: "http://a/1" }

describe("stillAsChecked", () => {
  it("holds at the revision checked, and for a command with no check", () => {
    assert.isTrue(stillAsChecked({ checkedRevision: 4 }, 4, () => fields))
    assert.isTrue(stillAsChecked({}, 9, () => fields))
  })

  it("at another revision, holds only when the fields the checks read are unchanged", () => {
    const checked = { checkedRevision: 4, checkedFields: { lanes: 2, segmentIds: ["101", "102"], batchSize: null } }
    // the url moved: not a field the checks read
    assert.isTrue(stillAsChecked(checked, 7, () => ({ ...fields, url: "http://a/2" })))
    assert.isFalse(stillAsChecked(checked, 7, () => ({ ...fields, lanes: 3 })))
    assert.isFalse(stillAsChecked(checked, 7, () => ({ ...fields, segmentIds: ["102", "101"] })))
    assert.isFalse(stillAsChecked(checked, 7, () => ({ ...fields, batchSize: 50 })))
    // deleted: no fields at all
    assert.isFalse(stillAsChecked(checked, 7, () => null))
    // pinned by revision alone
    assert.isFalse(stillAsChecked({ checkedRevision: 4 }, 7, () => fields))
  })

  it("compares values whatever the order of their keys", () => {
    const checked = { checkedRevision: 1, checkedFields: { limits: { a: 1, b: [1, { c: 2, d: 3 }] } } }
    assert.isTrue(stillAsChecked(checked, 2, () => ({ limits: { b: [1, { d: 3, c: 2 }], a: 1 } })))
    assert.isFalse(stillAsChecked(checked, 2, () => ({ limits: { b: [{ d: 3, c: 2 }, 1], a: 1 } })))
  })
})
