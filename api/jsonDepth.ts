/**
 * How deeply a JSON body nests. Everything after the edge — schema decoding, merge patch, the
 * fingerprint, JSON.stringify on the bus — walks documents recursively, so a body nested thousands
 * of levels deep would overflow the stack of whatever handled it (an entity actor answered 503). The
 * edge refuses it first, with this walk, which keeps its own stack so the check itself cannot overflow.
 */

/** The path of the first container nested deeper than `max` levels (the body itself is level 1), or undefined. */
export const tooDeep = (value: unknown, max: number): ReadonlyArray<string | number> | undefined => {
  interface Frame { readonly value: unknown; readonly depth: number; readonly key: string | number; readonly parent: Frame | undefined }
  const pending: Array<Frame> = [{ value, depth: 1, key: "", parent: undefined }]
  for (let frame = pending.pop(); frame !== undefined; frame = pending.pop()) {
    const current = frame.value
    if (typeof current !== "object" || current === null) continue
    if (frame.depth > max) {
      const path: Array<string | number> = []
      for (let f: Frame | undefined = frame; f?.parent !== undefined; f = f.parent) path.push(f.key)
      return path.reverse()
    }
    const entries: ReadonlyArray<readonly [string | number, unknown]> = Array.isArray(current)
      ? current.map((item, index) => [index, item] as const)
      : Object.entries(current)
    for (const [key, item] of entries) {
      if (typeof item === "object" && item !== null) pending.push({ value: item, depth: frame.depth + 1, key, parent: frame })
    }
  }
  return undefined
}
