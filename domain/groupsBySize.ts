/**
 * Items in order, split into as few groups as keep each group's total size within `maxSize`; an item
 * bigger than that alone is a group of its own. What bounds a message built of many: the intake's
 * EventBatch messages (JetStream's max_payload) and the device outbox's CleanBatches. No imports: the
 * domain's modules loaded by threads may use it.
 */
export const groupsBySize = <A>(items: ReadonlyArray<A>, sizeOf: (item: A) => number, maxSize: number): Array<Array<A>> => {
  const groups: Array<Array<A>> = []
  let current: Array<A> = []
  let size = 0
  for (const item of items) {
    const itemSize = sizeOf(item)
    if (current.length > 0 && size + itemSize > maxSize) {
      groups.push(current)
      current = []
      size = 0
    }
    current.push(item)
    size += itemSize
  }
  if (current.length > 0) groups.push(current)
  return groups
}
