/** Runs a program as the process: SIGINT/SIGTERM interrupt it, its finalizers drain, and it exits. */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Exit, Runtime } from "effect"
import type { Effect } from "effect"

/** Stopped by a signal after draining is a clean exit (0), as service managers expect. */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Runtime.defaultTeardown(exit, (code) => onExit(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? 0 : code))

export const runMain = <E, A>(program: Effect.Effect<A, E>) => NodeRuntime.runMain(program, { teardown })
