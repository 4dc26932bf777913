/**
 * A command the platform sends on its own behalf after a change made outside history (credentials,
 * a discarded dead letter), waiting until the entity recorded it: a refusal is the entity's error, a
 * failure CommandFailed (503: the caller sends its request again), a reply past its deadline CommandTimeout.
 */
import { Effect } from "effect"
import { CommandBus, CommandTimeout } from "../domain/CommandBus.ts"
import { nextUuidv7 } from "../domain/uuidv7.ts"
import { CommandFailed } from "./problems.ts"

export const recordCommand = (
  entityType: string,
  entityId: string,
  action: { readonly _tag: string } & Record<string, unknown>,
  /** what CommandFailed says, given the entity's failure message */
  whenFailed: (message: string) => string
) =>
  Effect.gen(function*() {
    const commandId = yield* nextUuidv7
    const reply = yield* (yield* CommandBus).send({ commandId, correlationId: commandId, entityType, entityId, action: action as never })
    switch (reply._tag) {
      case "Accepted":
        return
      case "Rejected":
        return yield* Effect.fail(reply.error)
      case "Failed":
        return yield* new CommandFailed({ detail: whenFailed(reply.message) })
      case "Expired":
        return yield* new CommandTimeout({ commandId, timeoutMillis: 0 })
    }
  })
