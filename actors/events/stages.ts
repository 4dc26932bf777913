/**
 * A pipeline of stages (SEDA): each stage a fiber taking from its own bounded queue, so a slow stage
 * fills the queue before it and the source stops pulling (backpressure all the way to JetStream).
 * Each stage's queue depth and time per item are metrics (`tributary_device_stage_depth{stage}`,
 * `tributary_device_stage_seconds{stage}`). One stage failing stops them all (the pipeline restarts).
 */
import { Clock, Effect, Metric, Queue } from "effect"

export const stageDepth = Metric.gauge("tributary_device_stage_depth", { description: "Items waiting in a device pipeline stage's queue" })
export const stageSeconds = Metric.histogram("tributary_device_stage_seconds", {
  description: "Time a device pipeline stage took per batch",
  boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 14 })
})

export interface Stage<A, E, R> {
  readonly name: string
  readonly run: (item: A) => Effect.Effect<A, E, R>
}

/**
 * Runs `stages` in order over what `feed` offers (its argument puts an item in the first queue,
 * suspending while it is full) until one fails or the scope ends.
 */
export const runStages = <A, E, R, E2, R2>(
  stages: ReadonlyArray<Stage<A, E, R>>,
  capacity: number,
  feed: (offer: (item: A) => Effect.Effect<void>) => Effect.Effect<unknown, E2, R2>
) =>
  Effect.gen(function*() {
    const queues: Array<Queue.Queue<A>> = []
    for (let i = 0; i < stages.length; i++) queues.push(yield* Queue.bounded<A>(capacity))
    const depth = (i: number) => Metric.update(stageDepth.pipe(Metric.withAttributes({ stage: stages[i]!.name })), Queue.sizeUnsafe(queues[i]!))
    const worker = (i: number) =>
      Effect.forever(Effect.gen(function*() {
        const item = yield* Queue.take(queues[i]!)
        yield* depth(i)
        const start = yield* Clock.currentTimeMillis
        const out = yield* stages[i]!.run(item)
        const end = yield* Clock.currentTimeMillis
        yield* Metric.update(stageSeconds.pipe(Metric.withAttributes({ stage: stages[i]!.name })), (end - start) / 1000)
        if (i + 1 < stages.length) {
          yield* Queue.offer(queues[i + 1]!, out)
          yield* depth(i + 1)
        }
      }))
    const offer = (item: A) => Effect.andThen(Queue.offer(queues[0]!, item), depth(0))
    return yield* Effect.all([feed(offer), ...stages.map((_, i) => worker(i))], { concurrency: "unbounded", discard: true })
  })
