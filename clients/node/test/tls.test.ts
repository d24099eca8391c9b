// The client over TLS (`{ tls: tls.ConnectionOptions }`) against a real
// `ledgerd --tls-cert/--tls-key [--tls-client-ca]`, with certificates from scripts/gen-certs
// (openssl): a session with pipelining, a CA that did not sign the server, and mutual TLS
// mapping a certificate to its client id.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, test } from "node:test";

import { AccountKind, AuthFailed, Client, Entry } from "../src/index.js";
import { Ledgerd, REPO, credentials } from "./ledgerd.js";

function genCerts(...clients: string[]): string {
  const dir = mkdtempSync(path.join(tmpdir(), "ledger-pki-"));
  execFileSync(path.join(REPO, "scripts", "gen-certs"), [dir, ...clients], { stdio: "ignore" });
  return dir;
}

let pki: string;
const servers: Ledgerd[] = [];
before(() => {
  pki = genCerts("admin", "writer");
});
after(async () => {
  for (const server of servers) await server.kill9();
});

async function start(mutual: boolean): Promise<Ledgerd> {
  const flags = ["--tls-cert", path.join(pki, "server.pem"), "--tls-key", path.join(pki, "server.key")];
  if (mutual) flags.push("--tls-client-ca", path.join(pki, "ca.pem"));
  const server = await Ledgerd.start(flags);
  servers.push(server);
  return server;
}

// Generous deadlines: a fresh ledgerd on a loaded 2-core machine can take seconds for its first
// journal rounds, and this test is about TLS, not latency.
const requestTimeoutMs = 20_000;

function tlsOptions(ca: string, client?: string): { ca: Buffer; cert?: Buffer; key?: Buffer } {
  const options: { ca: Buffer; cert?: Buffer; key?: Buffer } = { ca: readFileSync(ca) };
  if (client !== undefined) {
    options.cert = readFileSync(path.join(pki, `client-${client}.pem`));
    options.key = readFileSync(path.join(pki, `client-${client}.key`));
  }
  return options;
}

test("a session and pipelining over TLS", async () => {
  const server = await start(false);
  const admin = await Client.connect(server.address, credentials("admin"), { tls: tlsOptions(path.join(pki, "ca.pem")), requestTimeoutMs });
  const setup: Entry[] = [
    [1, { type: "OpenAccount", accountNo: "alice", userId: 1, currency: "USD", kind: AccountKind.User }],
    [2, { type: "OpenAccount", accountNo: "bob", userId: 2, currency: "USD", kind: AccountKind.User }],
    [3, { type: "OpenAccount", accountNo: "bank", userId: 0, currency: "USD", kind: AccountKind.System }],
    [4, { type: "Deposit", accountNo: "alice", channelNo: "bank", amount: "100.00" }],
  ];
  assert.ok((await admin.submit(setup)).every((outcome) => outcome.ok));
  const transfers = Array.from({ length: 500 }, (_, n) =>
    admin.submit([[1000 + n, { type: "Transfer", from: "alice", to: "bob", amount: "0.01" }]]));
  assert.ok((await Promise.all(transfers)).every(([outcome]) => outcome?.ok));
  assert.equal((await admin.account("bob"))!.availableMinor, 500n);
  admin.close();
  // A name the certificate does not carry is refused.
  await assert.rejects(
    Client.connect(server.address, credentials("admin"), { tls: { ...tlsOptions(path.join(pki, "ca.pem")), servername: "ledger.example" } }),
    /ledger\.example/,
  );
});

test("a CA that did not sign the server is refused", async () => {
  const server = await start(false);
  const other = genCerts();
  await assert.rejects(
    Client.connect(server.address, credentials("admin"), { tls: tlsOptions(path.join(other, "ca.pem")) }),
    /self[- ]signed|unable to verify|certificate/i,
  );
});

test("mutual TLS maps the certificate to its client id", async () => {
  const server = await start(true);
  const ca = path.join(pki, "ca.pem");
  const writer = await Client.connect(server.address, credentials("writer"), { tls: tlsOptions(ca, "writer") });
  assert.ok((await writer.ping()) >= 0);
  writer.close();
  await assert.rejects(
    Client.connect(server.address, credentials("admin"), { tls: tlsOptions(ca, "writer") }),
    (error: unknown) => error instanceof AuthFailed && /subject CN is not this client id/.test(error.message),
  );
  // Without a certificate the server ends the handshake.
  await assert.rejects(Client.connect(server.address, credentials("admin"), { tls: tlsOptions(ca) }));
});
