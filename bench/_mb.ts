import { DatabaseSync } from "node:sqlite"
import { createHash, randomBytes } from "node:crypto"
const path = `/tmp/mb/dev-${process.pid}.db`
const db = new DatabaseSync(path)
db.exec(`PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS dedupe (device BLOB PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (device BLOB PRIMARY KEY, app TEXT NOT NULL, touched INTEGER, state TEXT NOT NULL) WITHOUT ROWID;`)
const N = 50_000
const keys: string[] = []
for (let d = 0; d < N; d++) keys.push(createHash("sha256").update(`31337/dev-${d}`).digest().subarray(0, 16).toString("hex"))
db.exec("BEGIN")
const i1 = db.prepare("INSERT OR REPLACE INTO dedupe VALUES (?, ?)"), i2 = db.prepare("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)")
const sess = JSON.stringify({ state: { open: { id: "s-abcdef0123", start: "2026-11-29T10:00:00.000Z", last: "2026-11-29T10:09:30.000Z", events: 12, touched: 1764410000000, bg: null } }, ended: [{ id: "s-0123", start: "2026-11-29T09:00:00.000Z", end: "2026-11-29T09:10:00.000Z" }] })
for (const k of keys) { i1.run(Buffer.from(k, "hex"), Buffer.from([19])); i2.run(Buffer.from(k, "hex"), "31337", 1764410000000, sess) }
db.exec("COMMIT")
const list = Array.from({ length: 100 }, () => "?").join(", ")
const a = db.prepare(`SELECT device, state FROM dedupe WHERE device IN (${list})`)
const b = db.prepare(`SELECT device, state FROM sessions WHERE device IN (${list})`)
const c = db.prepare(`SELECT d.device, d.state, s.state AS sessions FROM dedupe d LEFT JOIN sessions s ON s.device = d.device WHERE d.device IN (${list})`)
const ah = db.prepare(`SELECT hex(device) AS device, state FROM dedupe WHERE device IN (${list})`)
const bh = db.prepare(`SELECT hex(device) AS device, state FROM sessions WHERE device IN (${list})`)
function run(name: string, f: (chunk: Buffer[]) => void) {
  let off = 0
  const t0 = performance.now(); let n = 0
  for (let r = 0; r < 300; r++) {
    const chunk: Buffer[] = []
    for (let j = 0; j < 100; j++) chunk.push(Buffer.from(keys[(off + j * 497) % N]!, "hex"))
    off += 7919
    f(chunk); n += 100
  }
  console.log(name, ((performance.now() - t0) * 1000 / n).toFixed(2), "µs/device")
}
const hex = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString("hex")
for (let rep = 0; rep < 3; rep++) {
  run("current (2 queries, blob keys)", (ch) => { const m = new Map<string, any>(); for (const r of a.all(...ch) as any[]) m.set(hex(r.device), { d: r.state }); for (const r of b.all(...ch) as any[]) { const k = hex(r.device); (m.get(k) ?? {}).s = JSON.parse(r.state) } })
  run("2 queries, no JSON.parse", (ch) => { const m = new Map<string, any>(); for (const r of a.all(...ch) as any[]) m.set(hex(r.device), { d: r.state }); for (const r of b.all(...ch) as any[]) { const k = hex(r.device); (m.get(k) ?? {}).s = r.state } })
  run("dedupe query only", (ch) => { for (const r of a.all(...ch) as any[]) hex(r.device) })
  run("join", (ch) => { const m = new Map<string, any>(); for (const r of c.all(...ch) as any[]) m.set(hex(r.device), { d: r.state, s: r.sessions === null ? undefined : JSON.parse(r.sessions) }) })
  run("hex in sql", (ch) => { const m = new Map<string, any>(); for (const r of ah.all(...ch) as any[]) m.set(r.device, { d: r.state }); for (const r of bh.all(...ch) as any[]) { (m.get(r.device) ?? {}).s = JSON.parse(r.state) } })
}
db.close()
