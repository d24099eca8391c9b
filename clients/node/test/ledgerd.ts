// Starts the real ledgerd for the tests: 127.0.0.1, an ephemeral port, a temporary data
// directory with three known clients. The binary is $LEDGERD_BIN when set (scripts/test-all
// sets it), else target/debug/ledgerd built once with cargo.

import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import type { Credentials } from "../src/index.js";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");

const SECRETS: Record<string, [string, string]> = {
  admin: ["admin", "admin-secret-0123456789abcdef"],
  writer: ["transact", "writer-secret-0123456789abcdef"],
  reader: ["read", "reader-secret-0123456789abcdef"],
};

export function credentials(clientId: string): Credentials {
  return { clientId, secret: SECRETS[clientId]![1] };
}

let binary: string | null = null;

function ledgerdBinary(): string {
  if (binary !== null) return binary;
  const given = process.env["LEDGERD_BIN"];
  if (given) {
    if (!existsSync(given)) throw new Error(`LEDGERD_BIN=${given} does not exist: build it with \`cargo build -p server --bin ledgerd\``);
    binary = given;
  } else {
    try {
      execFileSync("cargo", ["build", "-p", "server", "--bin", "ledgerd"], { cwd: REPO, stdio: "inherit" });
    } catch (error) {
      throw new Error(`cargo build failed (${String(error)}): install Rust (https://rustup.rs) or set LEDGERD_BIN`);
    }
    binary = path.join(REPO, "target", "debug", "ledgerd");
  }
  return binary;
}

export class Ledgerd {
  readonly dataDir: string;
  process: ChildProcess | null = null;
  address = { host: "127.0.0.1", port: 0 };
  lines: string[] = [];
  /** Flags after the test defaults (TLS, ...). */
  extra: string[] = [];

  private constructor() {
    const dir = mkdtempSync(path.join(tmpdir(), "ledgerd-node-"));
    this.dataDir = path.join(dir, "data");
    mkdirSync(this.dataDir);
    const file = path.join(this.dataDir, "credentials");
    writeFileSync(file, Object.entries(SECRETS).map(([id, [role, secret]]) => `${id} ${role} ${secret}\n`).join(""));
    chmodSync(file, 0o600);
  }

  static async start(extra: string[] = []): Promise<Ledgerd> {
    const server = new Ledgerd();
    server.extra = extra;
    await server.spawn();
    return server;
  }

  async spawn(): Promise<void> {
    const args = ["--data-dir", this.dataDir, "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--pin-core", "none", ...this.extra];
    const child = spawn(ledgerdBinary(), args, { stdio: ["ignore", "pipe", "pipe"] });
    this.process = child;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ledgerd did not start:\n${this.lines.join("\n")}`)), 60_000);
      let partial = "";
      const onData = (chunk: Buffer): void => {
        partial += chunk.toString();
        const lines = partial.split("\n");
        partial = lines.pop()!;
        for (const line of lines) {
          this.lines.push(line);
          const match = /^listening on 127\.0\.0\.1:(\d+)$/.exec(line.trim());
          if (match) {
            this.address = { host: "127.0.0.1", port: Number(match[1]) };
            clearTimeout(timer);
            resolve();
          }
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`ledgerd exited with ${code}:\n${this.lines.join("\n")}`));
      });
    });
  }

  /** SIGTERM; resolves to the exit code. */
  stop(): Promise<number | null> {
    const child = this.process!;
    this.process = null;
    return new Promise((resolve) => {
      child.removeAllListeners("exit");
      child.once("exit", (code) => resolve(code));
      child.kill("SIGTERM");
    });
  }

  kill9(): Promise<void> {
    const child = this.process;
    this.process = null;
    if (child === null || child.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.removeAllListeners("exit");
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
  }
}
