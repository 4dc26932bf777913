/**
 * The entity types the platform runs by default: one decider a file, registered here with one line.
 * The platform takes the list as configuration (api/platform.ts), so a test can run others.
 */
import type { AnyDecider } from "../Decider.ts"
import { advertiser } from "./advertiser.ts"
import { app } from "./app.ts"
import { campaign } from "./campaign.ts"
import { destination } from "./destination.ts"
import { partner } from "./partner.ts"
import { strategy } from "./strategy.ts"
import { userprofile } from "./userprofile.ts"

export const deciders: ReadonlyArray<AnyDecider> = [
  advertiser,
  campaign,
  strategy,
  partner,
  destination,
  userprofile,
  app
]
