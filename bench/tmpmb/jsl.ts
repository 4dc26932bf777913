import { DatabaseSync } from "node:sqlite"
import { rmSync, statSync } from "node:fs"
const path = "/tmp/mb/jsl.db"; for (const s of ["", "-wal", "-shm"]) rmSync(path + s, { force: true })
const limit = process.env.LIMIT
const a = new DatabaseSync(path); a.exec("PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); if (limit) a.exec(`PRAGMA journal_size_limit=${limit}`)
const b = new DatabaseSync(path); if (limit) b.exec(`PRAGMA journal_size_limit=${limit}`)
const ins = a.prepare("INSERT INTO t (v) VALUES (?)"); const del = a.prepare("DELETE FROM t WHERE id < ?")
const it = b.prepare("SELECT id FROM t").iterate(); a.exec("INSERT INTO t (v) VALUES ('x')"); it.next() // b holds a snapshot
let n = 1
for (let k = 0; k < 400; k++) { a.exec("BEGIN"); for (let i = 0; i < 100; i++) ins.run("x".repeat(1000)); n += 100; del.run(n - 1000); a.exec("COMMIT") }
const wal = () => (statSync(path + "-wal").size / 1e6).toFixed(1)
console.log("WAL while a reader held it:", wal(), "MB")
it.return!()
for (let k = 0; k < 20; k++) { a.exec("BEGIN"); for (let i = 0; i < 100; i++) ins.run("x".repeat(1000)); n += 100; del.run(n - 1000); a.exec("COMMIT") }
console.log("after the reader let go and 20 more commits:", wal(), "MB")
for (let k = 0; k < 400; k++) { a.exec("BEGIN"); for (let i = 0; i < 10; i++) ins.run("x".repeat(1000)); n += 10; del.run(n - 1000); a.exec("COMMIT") }
console.log("after 400 more small commits:", wal(), "MB")
