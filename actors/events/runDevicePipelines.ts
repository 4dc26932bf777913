/**
 * The device pipelines of this process (issue 8): one per app, each run by one process at a time
 * under the lease `job.events.<app>`, apps spread over the live processes by rendezvous hashing
 * (actors/runtime/KeyedJobs.ts). The apps looked at: those with batches waiting on EVENTS and those
 * with open sessions in devices.db (their timer must run to end them).
 */
import { Effect, Metric, Schedule } from "effect"
import type { Duration } from "effect"
import { DeviceStore } from "../../domain/events/DeviceStore.ts"
import { EventsQueue } from "../../domain/events/EventsQueue.ts"
import { jobLeaseKey } from "../../domain/subjects.ts"
import { runKeyedJobs } from "../runtime/KeyedJobs.ts"
import { devicePipeline, type DevicePipelineOptions } from "./DevicePipeline.ts"
import { DeviceStates } from "./DeviceStates.ts"

export interface DevicePipelinesOptions extends Omit<DevicePipelineOptions, "states"> {
  /** bytes of device states kept in memory by this process (DEVICE_MEMORY_BYTES) */
  readonly memoryBytes: number
  /** how often apps and ownership are looked at; default 1 second */
  readonly tick?: Duration.Input
}

const pipelinesRunning = Metric.gauge("tributary_device_pipelines_running", { description: "Apps whose device pipeline runs in this process" })
export const dedupeDiskBytes = Metric.gauge("tributary_device_dedupe_bytes", {
  description: "Bytes of devices.db's dedupe table (its pages, as dbstat counts them); ÷ tributary_device_dedupe_devices = bytes per device on disk"
})
export const dedupeDevices = Metric.gauge("tributary_device_dedupe_devices", { description: "Devices with dedupe state in devices.db" })

/** The dedupe footprint on disk, every minute (a pass over the table, on the writer thread: a commit waits for it). */
const measureFootprint = Effect.gen(function*() {
  const store = yield* DeviceStore
  const footprint = yield* store.footprint
  yield* Metric.update(dedupeDiskBytes, footprint.bytes)
  yield* Metric.update(dedupeDevices, footprint.devices)
}).pipe(
  Effect.catch((error) => Effect.logWarning("cannot measure the dedupe footprint", error)),
  Effect.repeat(Schedule.spaced("1 minute"))
)

/** The lease of an app's device pipeline. */
export const devicePipelineLeaseKey = (app: string) => jobLeaseKey(`events.${app}`)

const knownApps = Effect.gen(function*() {
  const queue = yield* EventsQueue
  const store = yield* DeviceStore
  return new Set<string>([...yield* queue.apps, ...yield* store.appsWithWork]) as ReadonlySet<string>
})

/** Runs this process's share of the apps' device pipelines for the life of the Scope. */
export const runDevicePipelines = (options: DevicePipelinesOptions) =>
  Effect.gen(function*() {
    const states = new DeviceStates(options.memoryBytes)
    yield* Effect.forkScoped(measureFootprint)
    yield* runKeyedJobs({
      name: "device pipeline",
      leaseKey: devicePipelineLeaseKey,
      keys: knownApps,
      run: (app) => devicePipeline(app, { ...options, states }).pipe(Effect.scoped),
      running: pipelinesRunning,
      ...(options.tick === undefined ? {} : { tick: options.tick })
    })
  })
