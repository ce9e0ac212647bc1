// node-pop3 (npm) against a POP3 server, driven by tests/clients/test_node.py.
//
//   node fetch.mjs MODE HOST PORT USER PASSWORD OUTDIR [CAFILE] [delete]
//
// MODE: "plain" (TCP) or "tls" (implicit TLS, verified against CAFILE; node-pop3 has no STLS).
// Uses the package's own API: LIST(), UIDL(), RETR(n) (which logs in with USER/PASS first),
// DELE(n) with "delete", QUIT(). Writes LIST and UIDL as "N VALUE" lines to OUTDIR/list.txt
// and OUTDIR/uidl.txt, and each message as RETR() resolved it to OUTDIR/N.eml (UTF-8).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Pop3Command from 'node-pop3';

const [mode, host, port, user, password, outdir, cafile, del] = process.argv.slice(2);
const tls = mode === 'tls';
const pop3 = new Pop3Command({
  user,
  password,
  host,
  port: Number(port),
  tls,
  timeout: 20000,
  servername: 'localhost',
  tlsOptions: tls ? { ca: readFileSync(cafile) } : {},
});

const lines = (rows) => rows.map((row) => `${row.join(' ')}\n`).join('');
const list = await pop3.LIST();
writeFileSync(join(outdir, 'list.txt'), lines(list));
writeFileSync(join(outdir, 'uidl.txt'), lines(await pop3.UIDL()));
for (const [number] of list) {
  writeFileSync(join(outdir, `${number}.eml`), await pop3.RETR(Number(number)));
  if (del === 'delete') {
    await pop3.DELE(Number(number));
  }
}
await pop3.QUIT();
