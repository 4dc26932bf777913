/**
 * HTTP to partners' APIs, as the deliverer needs it: one client per destination (its own connection
 * pool: a slow partner's connections never hold up another's), each request answered with an
 * Outcome (domain/delivery/RetryPolicy.ts) — never a failure: what went wrong is data to classify.
 * Declared here; implemented with undici in infra/delivery/partnerHttp.ts.
 */
import { Context } from "effect"
import type { Effect, Scope } from "effect"
import type { Outcome } from "./RetryPolicy.ts"

export interface PartnerRequest {
  readonly method: "POST" | "PUT"
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  readonly timeoutMs: number
}

/** An outcome, with the partner's answer body cut to `maxAnswerRead` (domain/delivery/DeadLetter.ts). */
export type PartnerAnswer = Outcome & { readonly body?: string | undefined }

export interface PartnerClient {
  readonly send: (request: PartnerRequest) => Effect.Effect<PartnerAnswer>
  /**
   * `send` for a hot path: starts the exchange and hands its answer to `answered` once. A fast destination's sender runs request after request in plain code
   * (actors/delivery/DeliveryActor.ts), where an Effect per request cost more than the exchange.
   */
  readonly dispatch: (request: PartnerRequest, answered: (answer: PartnerAnswer) => void) => void
}

export class PartnerHttp extends Context.Service<PartnerHttp, {
  /** A client for `url` with up to `connections` kept-alive connections, closed with the Scope. */
  readonly client: (url: string, options: { readonly connections: number }) => Effect.Effect<PartnerClient, never, Scope.Scope>
}>()("tributary/PartnerHttp") {}
