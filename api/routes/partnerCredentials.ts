/**
 * A partner's FTP/SFTP login (admin only): a password (kept as a salted hash) and SSH public keys, in
 * their own store (DATA_DIR/credentials.db). The partner entity is told only THAT they changed
 * (`RecordCredentialsChange`: whether it has a password, how many keys), so its history, which
 * auditors read, never holds a secret. Answers show the summary, never a secret.
 */
import { Effect, Redacted, Result, Schema } from "effect"
import { CredentialsSummary, PartnerCredentials } from "../../domain/ingest/PartnerCredentials.ts"
import { FieldIssue } from "../../domain/validation.ts"
import { keyLines, parseSshPublicKey } from "../../infra/ingest/sshPublicKey.ts"
import { InvalidRequest, problemResponse } from "../problems.ts"
import { recordCommand } from "../recordCommand.ts"
import { route } from "../route.ts"
import { findPartner, PartnerId } from "./ingestPartner.ts"

/** Credentials that decode but cannot be used (an SSH key that does not parse); `issues` name the field. */
export class InvalidCredentials extends Schema.TaggedError<InvalidCredentials>()("InvalidCredentials", {
  issues: Schema.Array(FieldIssue)
}) {}

const CredentialsChange = Schema.Struct({
  /** the FTP/SFTP password: at least 12 characters */
  password: Schema.optionalKey(Schema.String.check(Schema.isMinLength(12), Schema.isMaxLength(1_024))),
  /** OpenSSH public key line(s), as in `authorized_keys`; they replace the partner's keys ("" removes them) */
  sshPublicKey: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(65_536)))
}).annotate({ identifier: "PartnerCredentialsChange" })

const Params = Schema.Struct({ id: PartnerId })

const problems = {
  400: problemResponse("invalid body (a password shorter than 12 characters) or id"),
  401: problemResponse("missing or unknown API key"),
  403: problemResponse("not admin"),
  404: problemResponse("no such partner")
} as const

/** Tells the partner entity that its credentials changed (nothing secret), and waits for it to record it. */
const recordChange = (partner: string, summary: CredentialsSummary) =>
  recordCommand("partner", partner,
    { _tag: "RecordCredentialsChange", password: summary.password, sshPublicKeys: summary.sshPublicKeys, ...(summary.updatedAt === undefined ? {} : { at: summary.updatedAt }) },
    (message) => `the credentials changed, but partner ${partner} could not record it: ${message}; send them again`)

export const partnerCredentialsRoutes = [
  route({
    method: "PUT", url: "/v1/admin/partners/:id/credentials", tags: ["admin", "ingest"], roles: [], admission: "commands",
    summary: "Set a partner's FTP/SFTP password and/or SSH public keys (login name: the partner id); answers what it has, never the secrets",
    params: Params,
    body: CredentialsChange,
    responses: {
      200: { description: "what the partner has now", schema: CredentialsSummary },
      ...problems,
      422: problemResponse("an SSH public key that does not parse (or a private key)"),
      503: problemResponse("a store or the bus is unavailable; send it again"),
      504: problemResponse("the partner did not record the change in time; send it again")
    },
    handler: ({ params, body }) =>
      Effect.gen(function*() {
        if (body.password === undefined && body.sshPublicKey === undefined) {
          return yield* new InvalidRequest({ issues: [{ in: "body", path: [], message: "give password and/or sshPublicKey" }] })
        }
        yield* findPartner(params.id)
        const lines = body.sshPublicKey === undefined ? undefined : keyLines(body.sshPublicKey)
        const keys = lines?.map((line, i) => Result.mapError(parseSshPublicKey(line), (message) => ({ path: ["sshPublicKey", i], message })))
        const issues = (keys ?? []).flatMap((key) => Result.isFailure(key) ? [key.failure] : [])
        if (issues.length > 0) return yield* new InvalidCredentials({ issues })
        const summary = yield* (yield* PartnerCredentials).set(params.id, {
          password: body.password === undefined ? undefined : Redacted.make(body.password),
          sshPublicKeys: keys?.flatMap((key) => Result.isSuccess(key) ? [key.success] : [])
        })
        // The partner deleted while they were stored: its delete's drop may have run before they were
        // written, and a partner created again under the id would take them (stop 31's re-attack: 6 of 6
        // such races). They go, and the request answers 404.
        yield* recordChange(params.id, summary).pipe(
          Effect.tapErrorTag("EntityNotFound", () => PartnerCredentials.use((credentials) => credentials.remove(params.id)))
        )
        return { status: 200, body: summary }
      })
  }),
  route({
    method: "GET", url: "/v1/admin/partners/:id/credentials", tags: ["admin", "ingest"], roles: [], admission: "reads",
    summary: "Which FTP/SFTP credentials a partner has (never their values)",
    params: Params,
    responses: { 200: { description: "what the partner has", schema: CredentialsSummary }, ...problems, 503: problemResponse("the credentials store is unavailable") },
    handler: ({ params }) =>
      Effect.gen(function*() {
        yield* findPartner(params.id)
        return { status: 200, body: yield* (yield* PartnerCredentials).summary(params.id) }
      })
  })
]
