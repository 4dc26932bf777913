/**
 * The SFTP door (ssh2's Server with the SFTP subsystem): a partner logs in with its partner id and
 * its password or one of its SSH public keys, and sees one flat, virtual folder of its own uploads
 * (partnerFolder.ts). A file opened for writing streams, WRITE after WRITE, straight into
 * Intake.file (pushedUpload.ts); the upload is complete only when the client CLOSEs the handle, which
 * is answered once the whole file is stored, fsynced and its job recorded. A session that ends with
 * the handle still open (the client died, the connection broke) makes no job. Reads, deletes,
 * renames, links and folders are refused with a clear status. Writes may come out of order (several
 * in flight), up to MAX_HELD_BYTES held; they must not overlap or go back (no resuming).
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import ssh2 from "ssh2"
import type { Attributes, AuthContext, Connection, SFTPWrapper } from "ssh2"
import type { Intake } from "../../domain/ingest/Intake.ts"
import type { IngestJobs } from "../../domain/ingest/Job.ts"
import { PartnerCredentials } from "../../domain/ingest/PartnerCredentials.ts"
import { fileInFolder, isFolder } from "../../domain/ingest/uploadFileName.ts"
import type { DoorLogins } from "./doorLogins.ts"
import type { LoginGrace } from "./loginGrace.ts"
import { type FolderEntry, listFolder } from "./partnerFolder.ts"
import { openPushedUpload, type PushedUpload } from "./pushedUpload.ts"
import type { UploadPace } from "../../domain/uploadPace.ts"

const { Server, utils } = ssh2
const { OPEN_MODE, STATUS_CODE } = utils.sftp

export interface SftpDoorOptions {
  readonly host: string
  readonly port: number
  /** the server's private host key (OpenSSH or PEM) */
  readonly hostKey: string
  readonly maxConnections: number
  readonly maxUploadBytes?: number | undefined
  readonly uploadPace?: UploadPace | undefined
}

type Services = Intake | IngestJobs | PartnerCredentials
type Run = <A, E>(effect: Effect.Effect<A, E, Services>) => Promise<A>

/**
 * Bytes of writes one upload may hold unanswered: ahead of the file's end so far (waiting for the chunks
 * before them), or in order and not stored yet (a client that does not wait for replies). Each write
 * counts its bytes and `WRITE_OVERHEAD` more, what holding it costs the heap whatever its size.
 * (Before stop 31, found by an outside attack: only the bytes counted, and only those ahead, so one login
 * sending 1-byte or empty writes out of order, or pipelining in-order ones faster than the disk took them,
 * took the process to 5 GB of RSS, every lease lapsed.) Clients keep 2–8 MiB in flight (OpenSSH's and
 * ssh2's 64 requests of 32 KiB; 256 at most for the greediest), under this.
 */
const MAX_HELD_BYTES = 12 * 1024 * 1024
const WRITE_OVERHEAD = 256

/**
 * Handles (files and folder listings) one connection may hold open at once, and bytes of writes unanswered
 * (as MAX_HELD_BYTES) all its uploads together may hold, whatever number of SFTP channels it opens (at most MAX_CHANNELS).
 * Each open upload is a file descriptor. (Before, found by outside attacks: one session opened 20,500
 * files without closing any, took every descriptor of the process, and HTTP answered nothing until it
 * ended; 150 uploads each 8 MiB ahead held 1.24 GB. Then, with these bounds per SFTP channel, one
 * connection opening 100 channels held 1,600 files, and a partner's 4 connections 20,480: the same outage.)
 */
const MAX_HANDLES = 16
const MAX_SESSION_HELD_BYTES = 16 * 1024 * 1024
/** SSH session channels (and so SFTP subsystems) one connection may open. */
const MAX_CHANNELS = 4
/**
 * Replies an SFTP channel may hold for a client that does not read them: ssh2 keeps every reply the
 * client's window has no room for, without a bound. Past this the channel is closed (its uploads broken
 * off). A client reading its replies has at most the requests it pipelines waiting (64 for OpenSSH).
 * (Before, found by stop 31's re-attack: a client that never opened its window and kept writing to a
 * failed handle took the process from 237 MB to 1.47 GB of RSS in 4.8 million replies.)
 */
const MAX_UNREAD_REPLIES = 4_096

/** What one SSH connection holds, all its SFTP channels together. */
interface ConnectionBudget {
  handles: number
  /** bytes of writes unanswered (MAX_HELD_BYTES) */
  held: number
  channels: number
}

const now = () => Math.floor(Date.now() / 1000)
const folderAttrs = (): Attributes => ({ mode: 0o40755, uid: 0, gid: 0, size: 0, atime: now(), mtime: now() })
const fileAttrs = (size: number, mtimeMillis: number): Attributes => {
  const t = Math.floor(mtimeMillis / 1000)
  return { mode: 0o100444, uid: 0, gid: 0, size, atime: t, mtime: t }
}
const longname = (entry: FolderEntry) => `-r--r--r-- 1 partner partner ${entry.bytes} ${new Date(entry.modifiedMillis).toISOString()} ${entry.name}`

type Handle =
  | {
    readonly kind: "upload"
    readonly name: string
    readonly upload: Promise<PushedUpload>
    /** the offset the next chunk of the file starts at */
    next: number
    /** chunks written ahead of `next`, by offset, not answered yet */
    readonly early: Map<number, { readonly id: number; readonly data: Buffer }>
    /** bytes of writes unanswered, ahead or in order (MAX_HELD_BYTES) */
    held: number
    /** the last chunk handed to the upload (chunks are handed over one after the other) */
    tail: Promise<void>
    failed?: string
  }
  | { readonly kind: "folder"; listed: boolean }

const reasonOf = (error: unknown): string => {
  const reason = (error as { readonly reason?: unknown })?.reason
  return typeof reason === "string" ? reason : "the file could not be stored; try again"
}

/** Answers one SFTP session of `partner`: its folder, and uploads into Intake. */
const serveSftp = (
  sftp: SFTPWrapper,
  partner: string,
  run: Run,
  scope: Scope.Scope,
  uploads: { readonly maxBytes: number | undefined; readonly pace: UploadPace | undefined },
  budget: ConnectionBudget
) => {
  // Requests are taken only while the client reads what it was answered (MAX_UNREAD_REPLIES).
  const unread = sftp as unknown as { readonly _buffer?: ReadonlyArray<unknown> }
  const emit = sftp.emit.bind(sftp)
  sftp.emit = ((event: string | symbol, ...args: Array<unknown>) => {
    if (typeof event === "string" && /^[A-Z]+$/.test(event) && (unread._buffer?.length ?? 0) > MAX_UNREAD_REPLIES) {
      sftp.end()
      return false
    }
    return emit(event, ...args)
  }) as typeof sftp.emit
  const handles = new Map<string, Handle>()
  const tooMany = `at most ${MAX_HANDLES} files and folder listings open at once in a connection: close one first`
  let counter = 0
  const open = (handle: Handle) => {
    const id = Buffer.alloc(4)
    id.writeUInt32BE(counter++)
    handles.set(id.toString("hex"), handle)
    budget.handles++
    return id
  }
  const forget = (key: string) => {
    if (handles.delete(key)) budget.handles--
  }
  const find = (entries: ReadonlyArray<FolderEntry>, name: string | undefined) => entries.find((e) => e.name === name)
  const outside = "your folder holds only your uploads: a plain file name in it (no sub-folders, no ..)"

  sftp.on("REALPATH", (id, path) => {
    if (isFolder(path)) return sftp.name(id, [{ filename: "/", longname: "dr-xr-xr-x 1 partner partner 0 /", attrs: folderAttrs() }])
    const name = fileInFolder(path)
    if (name === undefined) return sftp.status(id, STATUS_CODE.NO_SUCH_FILE, outside)
    return sftp.name(id, [{ filename: `/${name}`, longname: name, attrs: fileAttrs(0, Date.now()) }])
  })
  const stat = (id: number, path: string) => {
    if (isFolder(path)) return sftp.attrs(id, folderAttrs())
    const name = fileInFolder(path)
    if (name === undefined) return sftp.status(id, STATUS_CODE.NO_SUCH_FILE, outside)
    run(listFolder(partner)).then((entries) => {
      const entry = find(entries, name)
      if (entry === undefined) sftp.status(id, STATUS_CODE.NO_SUCH_FILE, "no such file in your folder")
      else sftp.attrs(id, fileAttrs(entry.bytes, entry.modifiedMillis))
    }, () => sftp.status(id, STATUS_CODE.FAILURE, "the folder could not be read"))
  }
  sftp.on("STAT", stat)
  sftp.on("LSTAT", stat)

  sftp.on("OPENDIR", (id, path) => {
    if (!isFolder(path)) return sftp.status(id, STATUS_CODE.NO_SUCH_FILE, outside)
    if (budget.handles >= MAX_HANDLES) return sftp.status(id, STATUS_CODE.FAILURE, tooMany)
    sftp.handle(id, open({ kind: "folder", listed: false }))
  })
  sftp.on("READDIR", (id, handleId) => {
    const handle = handles.get(handleId.toString("hex"))
    if (handle?.kind !== "folder") return sftp.status(id, STATUS_CODE.FAILURE, "not a folder handle")
    if (handle.listed) return sftp.status(id, STATUS_CODE.EOF)
    handle.listed = true
    run(listFolder(partner)).then((entries) => {
      if (entries.length === 0) return sftp.status(id, STATUS_CODE.EOF)
      sftp.name(id, entries.map((entry) => ({ filename: entry.name, longname: longname(entry), attrs: fileAttrs(entry.bytes, entry.modifiedMillis) })))
    }, () => sftp.status(id, STATUS_CODE.FAILURE, "the folder could not be read"))
  })

  sftp.on("OPEN", (id, path, flags) => {
    if ((flags & OPEN_MODE.WRITE) === 0) return sftp.status(id, STATUS_CODE.PERMISSION_DENIED, "downloads are not offered: uploads become jobs")
    if ((flags & OPEN_MODE.APPEND) !== 0) return sftp.status(id, STATUS_CODE.OP_UNSUPPORTED, "appending is not supported: upload the whole file again")
    const name = fileInFolder(path)
    if (name === undefined) return sftp.status(id, STATUS_CODE.PERMISSION_DENIED, outside)
    if (budget.handles >= MAX_HANDLES) return sftp.status(id, STATUS_CODE.FAILURE, tooMany)
    const upload = run(openPushedUpload({ partner, source: "sftp", fileName: name, maxBytes: uploads.maxBytes, pace: uploads.pace, scope }))
    sftp.handle(id, open({ kind: "upload", name, upload, next: 0, early: new Map(), held: 0, tail: upload.then(() => undefined) }))
  })
  type Upload = Extract<Handle, { readonly kind: "upload" }>
  const costOf = (data: Buffer) => data.length + WRITE_OVERHEAD
  /** A write answered, or dropped: what it held is free. */
  const letGo = (handle: Upload, data: Buffer) => {
    handle.held -= costOf(data)
    budget.held -= costOf(data)
  }
  /** Forgets what an upload holds written ahead (it failed, or was closed with a gap). */
  const dropEarly = (handle: Upload) => {
    for (const { data } of handle.early.values()) letGo(handle, data)
    handle.early.clear()
  }
  sftp.on("WRITE", (id, handleId, offset, data) => {
    const handle = handles.get(handleId.toString("hex"))
    if (handle?.kind !== "upload") return sftp.status(id, STATUS_CODE.FAILURE, "not an upload handle")
    if (handle.failed !== undefined) return sftp.status(id, STATUS_CODE.FAILURE, handle.failed)
    if (offset < handle.next || handle.early.has(offset)) {
      handle.failed = "writes must not overlap or go back (no resuming): upload the whole file again"
      return sftp.status(id, STATUS_CODE.FAILURE, handle.failed)
    }
    // Clients write several chunks at once (ssh2's fastPut), which may come out of order: the early
    // ones wait here, bounded, until the chunks before them came.
    if (data.length === 0) return sftp.status(id, STATUS_CODE.OK)
    handle.early.set(offset, { id, data })
    handle.held += costOf(data)
    budget.held += costOf(data)
    if (handle.held > MAX_HELD_BYTES || budget.held > MAX_SESSION_HELD_BYTES) {
      handle.failed = handle.held > MAX_HELD_BYTES
        ? `more than ${MAX_HELD_BYTES} bytes of this file's writes are not answered yet (ahead of its end, or not stored yet): wait for replies, and write in order`
        : `this connection's files hold more than ${MAX_SESSION_HELD_BYTES} bytes of writes not answered yet: wait for replies, and write in order`
      for (const early of handle.early.values()) sftp.status(early.id, STATUS_CODE.FAILURE, handle.failed)
      dropEarly(handle)
      return
    }
    for (let next = handle.early.get(handle.next); next !== undefined; next = handle.early.get(handle.next)) {
      const chunk = next
      handle.early.delete(handle.next)
      handle.next += chunk.data.length
      // In order, one after the other: the reply waits until the stream took the chunk (backpressure),
      // and what the chunk holds counts until then.
      handle.tail = handle.tail.then(() => handle.upload).then((u) => run(u.write(chunk.data))).then(
        () => void sftp.status(chunk.id, STATUS_CODE.OK),
        (error: unknown) => {
          handle.failed ??= reasonOf(error)
          sftp.status(chunk.id, STATUS_CODE.FAILURE, handle.failed)
        }
      ).finally(() => letGo(handle, chunk.data))
    }
  })
  sftp.on("FSTAT", (id, handleId) => {
    const handle = handles.get(handleId.toString("hex"))
    if (handle === undefined) return sftp.status(id, STATUS_CODE.FAILURE, "no such handle")
    sftp.attrs(id, handle.kind === "folder" ? folderAttrs() : fileAttrs(handle.next, Date.now()))
  })
  sftp.on("CLOSE", (id, handleId) => {
    const key = handleId.toString("hex")
    const handle = handles.get(key)
    if (handle === undefined) return sftp.status(id, STATUS_CODE.FAILURE, "no such handle")
    forget(key)
    if (handle.kind === "folder") return sftp.status(id, STATUS_CODE.OK)
    if (handle.early.size > 0) handle.failed ??= "the file has a gap: a chunk before the last ones was never written"
    dropEarly(handle)
    // The client says the file is complete: it becomes a job once everything written is stored.
    handle.tail.then(() => handle.upload).then((u) =>
      handle.failed === undefined
        ? run(u.complete).then(() => sftp.status(id, STATUS_CODE.OK))
        : run(u.abort(handle.failed)).then(() => sftp.status(id, STATUS_CODE.FAILURE, handle.failed))
    ).catch((error: unknown) => sftp.status(id, STATUS_CODE.FAILURE, reasonOf(error)))
  })
  // Attributes mean nothing here; clients that set them after an upload are not failed for it.
  sftp.on("SETSTAT", (id) => sftp.status(id, STATUS_CODE.OK))
  sftp.on("FSETSTAT", (id) => sftp.status(id, STATUS_CODE.OK))
  sftp.on("READ", (id) => sftp.status(id, STATUS_CODE.OP_UNSUPPORTED, "downloads are not offered"))
  sftp.on("REMOVE", (id) => sftp.status(id, STATUS_CODE.PERMISSION_DENIED, "uploads cannot be deleted here"))
  sftp.on("RENAME", (id) => sftp.status(id, STATUS_CODE.PERMISSION_DENIED, "uploads cannot be renamed"))
  sftp.on("MKDIR", (id) => sftp.status(id, STATUS_CODE.PERMISSION_DENIED, "your folder has no sub-folders"))
  sftp.on("RMDIR", (id) => sftp.status(id, STATUS_CODE.PERMISSION_DENIED, "your folder has no sub-folders"))
  sftp.on("SYMLINK", (id) => sftp.status(id, STATUS_CODE.PERMISSION_DENIED, "links are not supported"))
  sftp.on("READLINK", (id) => sftp.status(id, STATUS_CODE.NO_SUCH_FILE, "links are not supported"))
  sftp.on("EXTENDED", (id) => sftp.status(id, STATUS_CODE.OP_UNSUPPORTED))

  /** The session ended: every upload not CLOSEd is broken off, and leaves nothing. */
  return () => {
    for (const [key, handle] of handles) {
      forget(key)
      if (handle.kind !== "upload") continue
      dropEarly(handle)
      void handle.upload.then((u) => run(u.abort("the session ended before the file was closed"))).catch(() => {})
    }
  }
}

/** Whether `ctx` presents one of the partner's public keys (and, when signed, signed with it). */
const keyMatches = (ctx: AuthContext & { readonly method: "publickey" }, keys: ReadonlyArray<string>) =>
  keys.some((line) => {
    const parsed = utils.parseKey(line)
    const key = Array.isArray(parsed) ? parsed[0] : parsed
    if (key === undefined || key instanceof Error || !ctx.key.data.equals(key.getPublicSSH())) return false
    return ctx.signature === undefined || ctx.blob === undefined || key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true
  })

/** Starts the SFTP door; closed (its sessions and uploads broken off) with `scope`. */
export const startSftpDoor = (options: SftpDoorOptions, logins: DoorLogins, grace: LoginGrace, run: Run) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const clients = new Set<Connection>()
    const server = new Server({ hostKeys: [options.hostKey], ident: "Tributary" }, (client, info) => {
      client.once("ready", () => loggedIn((client as unknown as { readonly _sock?: import("node:net").Socket })._sock))
      clients.add(client)
      // Each WRITE waits for its status: without this, Nagle's algorithm holds the small replies back
      // (~40 ms each against the client's delayed ACKs), and an upload crawls.
      ;(client as unknown as { setNoDelay(noDelay: boolean): void }).setNoDelay(true)
      let partner: string | undefined
      const endSessions: Array<() => void> = []
      const budget: ConnectionBudget = { handles: 0, held: 0, channels: 0 }
      client.on("error", () => {})
      client.on("close", () => {
        clients.delete(client)
        endSessions.forEach((end) => end())
        if (partner !== undefined) logins.release(partner)
      })
      client.on("authentication", (ctx) => {
        if (partner !== undefined) return ctx.reject()
        if (ctx.method === "publickey" && ctx.signature === undefined) {
          // The client asks whether a key would do, before signing with it: not a failed login yet.
          run(PartnerCredentials.use((c) => c.sshPublicKeys(ctx.username))).then(
            (keys) => keyMatches(ctx, keys) ? ctx.accept() : ctx.reject(["password", "publickey"]),
            () => ctx.reject(["password", "publickey"])
          )
          return
        }
        if (ctx.method !== "password" && ctx.method !== "publickey") return ctx.reject(["password", "publickey"])
        const check = ctx.method === "password"
          ? logins.password(info.ip, ctx.username, ctx.password)
          : logins.login(info.ip, ctx.username, (p) => Effect.map(PartnerCredentials.use((c) => c.sshPublicKeys(p)), (keys) => keyMatches(ctx, keys)))
        run(check).then((result) => {
          if (result._tag === "Refused") return ctx.reject(["password", "publickey"])
          partner = result.partner
          ctx.accept()
        }, () => ctx.reject(["password", "publickey"]))
      })
      client.on("session", (accept, reject) => {
        if (budget.channels >= MAX_CHANNELS) return reject()
        budget.channels++
        const session = accept()
        session.on("close", () => void budget.channels--)
        session.on("sftp", (acceptSftp, reject) => {
          if (partner === undefined) return reject()
          const sftp = acceptSftp()
          const end = serveSftp(sftp, partner, run, scope, { maxBytes: options.maxUploadBytes, pace: options.uploadPace }, budget)
          endSessions.push(end)
          sftp.on("close", end)
        })
      })
    })
    server.maxConnections = options.maxConnections
    // the login grace time (loginGrace.ts), on ssh2's own TCP server
    const loggedIn = grace.watch((server as unknown as { readonly _srv: import("node:net").Server })._srv)
    server.on("error", () => {})

    yield* Effect.acquireRelease(
      Effect.callback<void, unknown>((resume) => {
        const failed = (error: unknown) => resume(Effect.fail(error))
        server.once("error", failed)
        server.listen(options.port, options.host, () => {
          server.off("error", failed)
          resume(Effect.void)
        })
      }),
      () =>
        Effect.callback<void>((resume) => {
          for (const client of clients) client.end()
          server.close(() => resume(Effect.void))
        })
    )
    yield* Effect.logInfo("SFTP door listening", { host: options.host, port: options.port })
  })
