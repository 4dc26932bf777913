/**
 * NATS subjects and JetStream stream names (DESIGN.md, Contracts): the one place they are spelled.
 * Pure, so actors and projections can name subjects without depending on infra/.
 */

/** The JetStream streams Tributary declares (infra/nats/topology.ts creates them). */
export const StreamNames = {
  /** the command work queue: `cmd.<type>.<id>` */
  commands: "CMD",
  /** every event in commit order: `history.<type>.<id>` */
  history: "HISTORY",
  /** each entity's latest state only: `snapshot.<type>.<id>` */
  snapshots: "SNAPSHOTS",
  /** leases, so that one process among several does a job (the relay): `lease.<job>` */
  leases: "LEASES",
  /** durable positions of jobs that follow the event store (the relay): `checkpoint.<job>` */
  checkpoints: "CHECKPOINTS"
} as const

export const commandSubject = (entityType: string, entityId: string): string => `cmd.${entityType}.${entityId}`
export const historySubject = (entityType: string, entityId: string): string => `history.${entityType}.${entityId}`
export const snapshotSubject = (entityType: string, entityId: string): string => `snapshot.${entityType}.${entityId}`
export const leaseSubject = (job: string): string => `lease.${job}`
export const checkpointSubject = (job: string): string => `checkpoint.${job}`

/** Every subject of a stream, as its subject filter. */
export const allCommands = "cmd.>"
export const allHistory = "history.>"
export const allSnapshots = "snapshot.>"
export const allLeases = "lease.>"
export const allCheckpoints = "checkpoint.>"
