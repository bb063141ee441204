// DKIM, SPF, DMARC and ARC through mailauth, the way its authenticate() runs them, minus BIMI
// and ARC sealing. The parts are loaded one by one rather than through mailauth's index, which
// also loads the signer, BIMI and its SVG validator: ~200 ms of start-up per message that this
// program never uses. SPF and DMARC are loaded only when there is a client address to check.
//
// mailauth reads the message as a stream: the header section is kept in memory (bounded here
// by the caller, see MAX_HEAD_BYTES), the body is hashed as it passes.
import { Readable } from 'node:stream';
import type { ARCData, DNSResolver } from 'mailauth';
import type { dkimVerify as DkimVerify } from 'mailauth/lib/dkim/verify.js';
import type { arc as Arc } from 'mailauth/lib/arc/index.js';
import type { spf as Spf } from 'mailauth/lib/spf/index.js';
import type { evaluateDmarc as EvaluateDmarc } from 'mailauth/lib/dmarc/index.js';

export interface AuthStatus {
  result: string;
  comment?: string | false;
  testing?: boolean;
  warnings?: string[];
  underSized?: number;
  smtp?: Record<string, unknown>;
  header?: Record<string, unknown>;
  policy?: Record<string, unknown>;
}

export interface DkimSignatureResult {
  signingDomain?: string;
  selector?: string;
  signature?: string;
  algo?: string;
  rr?: string;
  canonBodyLengthLimited?: boolean;
  canonBodyLengthLimit?: number;
  canonBodyLengthTotal?: number;
  status: AuthStatus;
}

export interface MailauthResults {
  readonly dkim: readonly DkimSignatureResult[];
  readonly spf: AuthStatus;
  readonly dmarc: AuthStatus;
  readonly arc: AuthStatus;
}

/** mailauth's resolver shape: TXT answers as arrays of character-strings. */
export type ResolveFunction = DNSResolver;

export interface CheckInput {
  /** The normalised (CRLF) message, each chunk a fresh buffer. */
  readonly chunks: () => Iterable<Buffer>;
  /** MAIL FROM, '' for the null sender. */
  readonly sender: string;
  /** The client's address (TCPREMOTEIP); null for local injection. */
  readonly ip: string | null;
  readonly helo: string | null;
  readonly authservId: string;
  readonly resolver: ResolveFunction;
}

// mailauth's own shipped types, as the installed (exactly pinned) version declares them.
interface DkimModules {
  dkimVerify: typeof DkimVerify;
  arc: typeof Arc;
}
interface ClientModules {
  spf: typeof Spf;
  evaluateDmarc: typeof EvaluateDmarc;
}

async function loadDkim(): Promise<DkimModules> {
  const [dkim, arc] = await Promise.all([import('mailauth/lib/dkim/verify.js'), import('mailauth/lib/arc/index.js')]);
  return { dkimVerify: dkim.dkimVerify, arc: arc.arc };
}

/** SPF and DMARC, loaded only for a message that came with a client address. */
async function loadClientChecks(): Promise<ClientModules> {
  const [spf, dmarc] = await Promise.all([import('mailauth/lib/spf/index.js'), import('mailauth/lib/dmarc/index.js')]);
  return { spf: spf.spf, evaluateDmarc: dmarc.evaluateDmarc };
}

const none = (comment: string): AuthStatus => ({ result: 'none', comment });

/**
 * What dkimVerify found of the ARC chain, for arc(), which takes an empty one when it found
 * none. mailauth's types give the two ends different names for the same object.
 */
const arcData = (found: unknown): ARCData => (found ?? {}) as ARCData;

export async function runMailauth(input: CheckInput): Promise<MailauthResults> {
  const modules = await loadDkim();
  const dkimOutput = await modules.dkimVerify(Readable.from(input.chunks(), { objectMode: false, highWaterMark: 1 << 16 }), {
    resolver: input.resolver,
    sender: input.sender,
    minBitLength: 1024,
  });
  // The verifier's `aligned` mark is not ours to pass on: DMARC finds alignment by its own Tree
  // Walk, and in the bundle the mark is made without the public suffix list
  // (src/verify/mailauth-tldts.ts).
  const dkim: DkimSignatureResult[] = (dkimOutput.results ?? []).map(({ status: { aligned: _mark, ...status }, ...row }) => ({ ...row, status }));
  if (input.ip === null) {
    // Local injection (qmail-inject, a cron job): there is no client to check SPF against,
    // and without SPF a DMARC verdict would be about half the evidence.
    const why = 'no client address: not received over SMTP';
    const arc = await modules.arc(arcData(dkimOutput.arc), { resolver: input.resolver, minBitLength: 1024 });
    return { dkim, spf: none(why), dmarc: none(why), arc: arc.status };
  }
  const helo = input.helo ?? `[${input.ip}]`;
  const client = await loadClientChecks();
  const spfResult = await client.spf({ sender: input.sender, ip: input.ip, helo, mta: input.authservId, resolver: input.resolver });
  const spf = spfResult ? spfResult.status : none('no SPF check');
  const arcResult = await modules.arc(arcData(dkimOutput.arc), { resolver: input.resolver, minBitLength: 1024, ip: input.ip });
  const arc = arcResult.status;
  let dmarc: AuthStatus = none('no author domain');
  if (dkimOutput.headerFrom?.length) {
    const evaluated = await client.evaluateDmarc({
      headerFrom: dkimOutput.headerFrom,
      fromFields: dkimOutput.fromFields,
      spfDomains: spfResult && spf.result === 'pass' && spfResult.domain ? [spfResult.domain] : [],
      dkimDomains: dkim
        .filter((row) => row.status.result === 'pass')
        .flatMap((row) => (row.signingDomain ? [{ domain: row.signingDomain, ...(row.status.underSized !== undefined ? { underSized: row.status.underSized } : {}) }] : [])),
      arcResult,
      resolver: input.resolver,
    });
    if (evaluated.response) dmarc = evaluated.response.status;
    else if (evaluated.reason) dmarc = none(evaluated.reason);
  }
  return { dkim, spf, dmarc, arc };
}
