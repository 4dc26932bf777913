/** A device's key in devices.db and in memory: 16 bytes of SHA-256 over (app, deviceId), as hex. */
import { createHash } from "node:crypto"

export const deviceKey = (app: string, deviceId: string): string =>
  createHash("sha256").update(app).update("\u0000").update(deviceId).digest().subarray(0, 16).toString("hex")
