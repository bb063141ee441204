// A real MTA-STS policy host: HTTPS on port 443 of a loopback address (tests run as root), with
// a certificate for mta-sts.<domain> from a test CA, serving /.well-known/mta-sts.txt and
// counting the requests, so tests can tell a cached policy from a fetched one. DNS (dnsmasq)
// points mta-sts.<domain> at the address.
import { createServer, type Server } from 'node:https';
import type { KeyPair } from './ca.ts';

export interface PolicyHost {
  readonly ip: string;
  /** GET requests for the policy so far. */
  readonly fetches: () => number;
  /** What the next requests get: a policy text, or an HTTP status with no policy. */
  serve(answer: string | { status: number; location?: string }): void;
  close(): Promise<void>;
}

/** A loopback address of its own per policy host, so parallel test files do not share port 443. */
export function policyHostIp(): string {
  return `127.${20 + (process.pid % 200)}.${Math.floor(Math.random() * 250) + 1}.1`;
}

export function enforcePolicy(mx: readonly string[], maxAge = 86400, mode = 'enforce'): string {
  return ['version: STSv1', `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), `max_age: ${maxAge}`, ''].join('\r\n');
}

export async function startPolicyHost(pair: KeyPair, ip: string, policy: string): Promise<PolicyHost> {
  let answer: string | { status: number; location?: string } = policy;
  let count = 0;
  const server: Server = createServer({ key: pair.key, cert: pair.cert }, (req, res) => {
    if (req.url !== '/.well-known/mta-sts.txt') {
      res.writeHead(404).end();
      return;
    }
    count += 1;
    if (typeof answer === 'string') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(answer);
    } else {
      res.writeHead(answer.status, answer.location ? { location: answer.location } : {}).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(443, ip, () => resolve());
  });
  return {
    ip,
    fetches: () => count,
    serve(next) {
      answer = next;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
