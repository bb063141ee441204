// What crosses into and out of one SMTP delivery: the addresses with their TLS requirement,
// the delivery's settings, and the result with the reports and what the log needs.
import type { TlsRequirement } from '../tls/requirement.ts';
import type { TlsLog } from '../log.ts';
import type { Failure, SmtpOutcome } from '../../common/failures.ts';
import type { Reports } from '../report.ts';
import type { Tcpto } from '../tcpto.ts';

export interface DeliveryAddress {
  ip: string;
  family: 4 | 6;
  /**
   * What its TLS session must be (src/delivery/tls/policy.ts); opportunistic with no SNI when
   * absent. Its name (the MX or relay name) is sent as SNI and is what a certificate must match.
   */
  tls?: TlsRequirement;
}

export interface Delivery {
  /** In order; the next one is tried only when a connection cannot be made. */
  addresses: DeliveryAddress[];
  port: number;
  helohost: string;
  /**
   * One char per byte (see argv.ts), sent as those bytes. '' is a bounce (MAIL FROM:<>); the
   * double bounce sender '#@[]' passes as is.
   */
  sender: string;
  /** argv order, one char per byte; the recipient reports come back in the same order. */
  recips: string[];
  /** The message (LF or CRLF lines, already signed, not dot-stuffed); the dot-stuffer ends every line in CRLF. Called at most once, after DATA was accepted. */
  message: () => NodeJS.ReadableStream | AsyncIterable<Buffer> | Iterable<Buffer>;
  /** Seconds, control/timeoutconnect (default 60). */
  timeoutConnect: number;
  /** Seconds of read or write inactivity, control/timeoutremote (default 1200). */
  timeoutRemote: number;
  /** SMTP AUTH credentials, used only over TLS whose certificate verified. */
  auth?: { user: string; pass: string };
  /** Implicit TLS (SMTPS, smtproutes port 465): the handshake comes before the greeting. */
  implicitTls?: boolean;
  /** qmail's table of hosts that timed out (src/delivery/tcpto.ts); none when absent. */
  tcpto?: Tcpto;
  /** The source address to bind (control/outgoingip, control/domainbindings). */
  localAddress?: string;
  /** The message's size in bytes as far as known (queue file and signature fields), for SIZE= (RFC 1870). */
  size?: number;
  /** Whether the message has 8-bit bytes, for BODY=8BITMIME (RFC 6152); asked only of a server that offers it. */
  eightBit?: () => boolean;
}

/** The stages of the dialogue, for the log line. */
export type Stage = 'envelope' | 'connect' | 'greeting' | 'auth' | 'mail' | 'rcpt' | 'data' | 'message';

/** How a dialogue ended: a catalogued report (SMTP stage or plain failure). */
export type Ending = SmtpOutcome | Failure;

export interface DeliveryResult {
  reports: Reports;
  /** The address the reports talk about, when a connection was made. */
  ip?: string;
  /** For the log: the catalogue code, where the dialogue ended and why, when known. */
  code: string;
  stage: Stage;
  cause?: string;
  /** The TLS side of the session the reports talk about, for the log. */
  tls?: TlsLog;
}

/** How one session runs: set by the delivery for each connection (smtp/index.ts). */
export interface SessionOptions {
  startTls: boolean;
  /** The plaintext retry after a failed handshake: refusals that may mean "TLS only" defer. */
  retry: boolean;
  requirement: TlsRequirement;
  /** SMTPS: TLS from the first byte. */
  implicit: boolean;
}

/** The reply, or how the dialogue ended while waiting for it. */
export type Step<T> = T | { ended: Ending };

export const ended = <T>(step: Step<T>): step is { ended: Ending } =>
  typeof step === 'object' && step !== null && 'ended' in step;
