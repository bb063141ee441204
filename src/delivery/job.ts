// One delivery as a job, apart from the process (qmail-remote.ts): the arguments, the control
// files and the message in; the reports and what the log needs out. Nothing here runs on
// import, prints or ends the process, so the tests run it in process.
//
// Order of work: control files, then the message is read and signed (a key problem defers the
// mail before any connection is made), then routing, then one SMTP delivery.
import { fstatSync } from 'node:fs';
import { join } from 'node:path';
import { controlDir, qmailHome, readControlInt, readControlLine, readControlLines } from '../common/control.ts';
import { describeCause, fail, failure, type Failure, type Result } from '../common/failures.ts';
import { readEntryKey } from '../mail/entry-mark.ts';
import { sealIfForwarded } from '../signing/seal.ts';
import { loadTable } from '../signing/config.ts';
import type { SigningTable } from '../signing/table.ts';
import { parseFamilyPolicy, reachableFrom, withFamilies, type FamilyPolicy } from './family.ts';
import { chooseBinding, type Binding, type BindingFiles } from './binding.ts';
import { tcptoTable } from './tcpto.ts';
import { hasEightBit, MessageReadError, openMessage, type MessageSource } from '../mail/message.ts';
import type { Reports } from './report.ts';
import { signMessage, type Signed } from '../signing/sign.ts';
import type { DeliveryLog } from './log.ts';
import { dnsName, findRoute, parseIpLiteral, routingResolver, parseSmtproutes, resolveDestination, type Destination } from './route.ts';
import { deliver, type DeliveryAddress } from './smtp/index.ts';
import { makeResolver, serverList } from '../common/dns.ts';
import { lookupPolicy, type StsLookup } from './tls/mta-sts.ts';
import { excluded, requirementFor, SMTPS_PORT } from './tls/policy.ts';

/** control/timeoutconnect and control/timeoutremote defaults, in seconds (qmail-remote.c). */
const TIMEOUT_CONNECT = 60;
const TIMEOUT_REMOTE = 1200;
/** qmail-send's default control/queuelifetime: a week. */
const QUEUE_LIFETIME = 604800;
const DAY = 86400;

interface Control {
  readonly dir: string;
  readonly me: string;
  readonly helohost: string;
  readonly timeoutConnect: number;
  readonly timeoutRemote: number;
  readonly smtproutes: string[];
  readonly dksign: string[];
  /** control/dkimkeys, when present. */
  readonly table: SigningTable | null;
  /** control/ipv6: the address families to use, and which first. */
  readonly families: FamilyPolicy | null;
  /** control/outgoingip, control/domainbindings, control/helohostbyip. */
  readonly binding: BindingFiles;
  /** qmail-send's control/queuelifetime, seconds: how long an entry mark stays good (a day more). */
  readonly queueLifetime: number;
}

export interface Outcome {
  readonly reports: Reports;
  readonly log: Omit<DeliveryLog, 'ms' | 'result' | 'report'>;
}

/** A failure before any recipient was tried: the message report alone. */
export const failed = (f: Failure): Reports => ({ recipients: [], message: { letter: f.letter, text: f.text } });

function readControlFiles(dir: string): Result<Control> {
  const me = readControlLine(dir, 'me');
  const helohost = readControlLine(dir, 'helohost');
  const timeoutConnect = readControlInt(dir, 'timeoutconnect', TIMEOUT_CONNECT);
  const timeoutRemote = readControlInt(dir, 'timeoutremote', TIMEOUT_REMOTE);
  const smtproutes = readControlLines(dir, 'smtproutes');
  const dksign = readControlLines(dir, 'dksign');
  const queueLifetime = readControlInt(dir, 'queuelifetime', QUEUE_LIFETIME);
  const table = loadTable(dir);
  const ipv6 = readControlLine(dir, 'ipv6');
  const families = ipv6.ok ? parseFamilyPolicy(ipv6.value) : ipv6;
  const outgoingip = readControlLine(dir, 'outgoingip');
  const domainbindings = readControlLines(dir, 'domainbindings');
  const helohostbyip = readControlLines(dir, 'helohostbyip');
  const files = [me, helohost, timeoutConnect, timeoutRemote, smtproutes, dksign, queueLifetime, table, families, outgoingip, domainbindings, helohostbyip];
  for (const file of files) if (!file.ok) return file;
  const name = (helohost.ok && helohost.value) || (me.ok && me.value);
  if (!name) return fail(failure('READ_CONTROL'));
  return {
    ok: true,
    value: {
      dir,
      me: (me.ok && me.value) || name,
      helohost: name,
      timeoutConnect: timeoutConnect.ok ? timeoutConnect.value : TIMEOUT_CONNECT,
      timeoutRemote: timeoutRemote.ok ? timeoutRemote.value : TIMEOUT_REMOTE,
      smtproutes: (smtproutes.ok && smtproutes.value) || [],
      dksign: (dksign.ok && dksign.value) || [],
      table: table.ok ? table.value : null,
      families: families.ok ? families.value : null,
      binding: {
        outgoingip: outgoingip.ok ? outgoingip.value : null,
        domainbindings: (domainbindings.ok && domainbindings.value) || [],
        helohostbyip: (helohostbyip.ok && helohostbyip.value) || [],
      },
      queueLifetime: queueLifetime.ok ? queueLifetime.value : QUEUE_LIFETIME,
    },
  };
}

/**
 * The whole job: `argv` as bytes (argv.ts), the message on `messageFd` (fd 0 under qmail-rspawn).
 * Never rejects for an expected outcome: each is a report; what does reject is a bug (Z).
 */
export async function run(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, messageFd = 0): Promise<Outcome> {
  const [host, sender, ...recips] = argv;
  const log = { host: host ?? '', sender: sender ?? '', recips, signatures: [] as string[], notes: [] as string[] };
  if (host === undefined || sender === undefined || recips.length === 0) return { reports: failed(failure('USAGE')), log };

  const control = readControlFiles(controlDir(env));
  if (!control.ok) return { reports: failed(control.error), log };

  let source: MessageSource;
  try {
    assertMessageInput(messageFd);
    source = await openMessage(messageFd);
  } catch (error) {
    return { reports: failed(failure('READ_MESSAGE', error)), log: { ...log, notes: [`fd 0: ${describeCause(error)}`] } };
  }
  try {
    return await signAndDeliver({ host, sender, recips, control: control.value, env }, source, log);
  } catch (error) {
    if (error instanceof MessageReadError) return { reports: failed(failure('READ_MESSAGE')), log };
    throw error;
  } finally {
    source.close();
  }
}

/**
 * fd 0 is a queue file under qmail-rspawn, or a pipe by hand. Anything else is no message: a
 * closed fd 0 (which Node replaces with /dev/null at start-up, so it would read as an empty
 * message and be delivered), a device such as /dev/zero (which never ends), a directory.
 */
function assertMessageInput(fd: number): void {
  const stat = fstatSync(fd);
  if (!stat.isFile() && !stat.isFIFO() && !stat.isSocket()) throw new Error('fd 0 is neither a file nor a pipe');
}

/** The arguments qmail-rspawn gave, and where they lead. */
interface Job {
  readonly host: string;
  readonly sender: string;
  readonly recips: string[];
  readonly control: Control;
  readonly env: NodeJS.ProcessEnv;
}

/** Signs first (a key problem defers the mail before any connection), then routes and delivers. */
async function signAndDeliver(job: Job, source: MessageSource, log: Outcome['log']): Promise<Outcome> {
  const now = Math.floor(Date.now() / 1000);
  const nosign = findRoute(parseSmtproutes(job.control.smtproutes), dnsName(job.host))?.nosign === true;
  // Which keys, for the signatures and for a seal alike (dksign or dkimkeys).
  const keys = {
    templates: job.control.dksign,
    ...(job.control.table ? { table: job.control.table } : {}),
    qmailHome: qmailHome(job.env),
    time: now,
  };
  const signed = signMessage(source, {
    ...keys,
    ...(nosign ? { off: 'the smtproutes entry for this host says nosign' } : {}),
    origin: { key: () => readEntryKey(job.control.dir), now, maxAge: job.control.queueLifetime + DAY },
  });
  if (!signed.ok) return { reports: failed(signed.error), log: { ...log, notes: [signed.error.cause ?? signed.error.code] } };
  const sealed = await sealIfForwarded(signed.value, source, { ...keys, me: job.control.me });
  if (!sealed.ok) return { reports: failed(sealed.error), log: { ...log, notes: [sealed.error.cause ?? sealed.error.code] } };
  const signedLog = { ...log, signatures: describe(signed.value), notes: [...signed.value.notes, ...sealed.value.notes] };

  const binding = chooseBinding(job.control.binding, job.sender);
  if (!binding.ok) return { reports: failed(binding.error), log: { ...signedLog, notes: [...signedLog.notes, binding.error.cause ?? binding.error.code] } };
  const bound = binding.value;
  const boundNotes = bound ? [`bind ${bound.address} (${bound.source})`] : [];

  // The MTA-STS TXT query goes out beside the MX query: it adds no round trip.
  const [destination, sts] = await Promise.all([route(job.host, job.control, job.env, bound), stsPolicy(job)]);
  if (!destination.ok) {
    const cause = destination.error.cause ? [`dns: ${destination.error.cause}`] : [];
    return { reports: failed(destination.error), log: { ...signedLog, notes: [...signedLog.notes, ...cause] } };
  }
  const stsNotes = [...boundNotes, ...(sts === null || sts.source === 'none' ? [] : [describeSts(sts)])];
  const addresses = secured(destination.value, sts, job.control.dir);
  if (!addresses.ok) {
    const notes = [...signedLog.notes, ...stsNotes, addresses.error.cause ?? addresses.error.code];
    return { reports: failed(addresses.error), log: { ...signedLog, host: destination.value.host, notes } };
  }

  const result = await deliver({
    addresses: addresses.value,
    port: destination.value.port,
    implicitTls: destination.value.port === SMTPS_PORT,
    helohost: bound?.helohost ?? job.control.helohost,
    ...(bound ? { localAddress: bound.address } : {}),
    tcpto: tcptoTable(qmailHome(job.env)),
    sender: job.sender,
    recips: job.recips,
    message: () => wire(sealed.value.prefix, source),
    ...messageFacts(sealed.value.prefix, source),
    timeoutConnect: job.control.timeoutConnect,
    timeoutRemote: job.control.timeoutRemote,
    ...(destination.value.auth ? { auth: destination.value.auth } : {}),
  });
  const where = { host: destination.value.host, ...(result.ip ? { ip: result.ip } : {}), ...(result.tls ? { tls: result.tls } : {}) };
  const smtp = `smtp: ${result.code} at ${result.stage}${result.cause ? ` (${result.cause})` : ''}`;
  return { reports: result.reports, log: { ...signedLog, ...where, notes: [...signedLog.notes, ...stsNotes, smtp] } };
}

/**
 * The MTA-STS policy of the recipient domain (tls/mta-sts.ts), for mail routed through MX:
 * null for a host routed to an smtproutes relay (out of policy) or written as an IP address.
 */
async function stsPolicy(job: Job): Promise<StsLookup | null> {
  const host = dnsName(job.host);
  const route = findRoute(parseSmtproutes(job.control.smtproutes), host);
  if ((route !== undefined && route.relay !== '') || parseIpLiteral(host) !== undefined) return null;
  const resolver = makeResolver({ servers: serverList(job.env.QMAILREMOTE_DNS) });
  if (resolver === null) return null; // routing reports the unusable QMAILREMOTE_DNS
  return lookupPolicy(host, {
    cacheDir: join(qmailHome(job.env), 'mta-sts'),
    resolver,
    timeoutMs: Math.max(job.control.timeoutConnect, 1) * 1000,
  });
}

function describeSts(sts: StsLookup): string {
  const mode = sts.policy?.mode ?? 'none';
  return `mta-sts: ${mode} (${sts.source}${sts.failure ? ` ${sts.failure}` : ''}${sts.error ? `: ${sts.error}` : ''})`;
}

/**
 * Each address with the TLS its name requires (tls/policy.ts); the MX hosts an enforce policy
 * does not list are left out, and when none is left the mail waits (STS_NO_MX), never bounces.
 */
function secured(destination: Destination, sts: StsLookup | null, controlDir: string): Result<DeliveryAddress[]> {
  const ctx = { controlDir, relayed: destination.relayed, port: destination.port, auth: destination.auth !== undefined, sts };
  const out: DeliveryAddress[] = [];
  const left: string[] = [];
  for (const address of destination.addresses) {
    const requirement = requirementFor(address.name, ctx);
    if (!requirement.ok) return requirement;
    if (excluded(requirement.value)) left.push(address.name);
    else out.push({ ip: address.ip, family: address.family, tls: requirement.value });
  }
  if (out.length === 0) return fail(failure('STS_NO_MX', `not in the policy: ${[...new Set(left)].join(', ')}`));
  return { ok: true, value: out };
}

async function route(host: string, control: Control, env: NodeJS.ProcessEnv, bound: Binding | null): Promise<Result<Destination>> {
  const resolver = routingResolver(env);
  if (!resolver.ok) return resolver;
  const destination = await resolveDestination(host, parseSmtproutes(control.smtproutes), { resolver: resolver.value });
  if (!destination.ok) return destination;
  const ordered = withFamilies(destination.value, control.families);
  return ordered.ok && bound ? reachableFrom(ordered.value, bound.family, bound.source) : ordered;
}

/**
 * What goes after DATA: the ARC set and signature fields, then the message as read. smtp/wire.ts's dot-stuffer
 * normalises line ends as it doubles dots (src/delivery/transparency.ts), in the same pass, so
 * the bytes sent are the normalised text that was signed.
 */
/**
 * What MAIL's parameters need: the size, the queue file's and the fields above it (LF line ends
 * count one byte short of CRLF: RFC 1870 asks for an estimate), and whether any byte is 8-bit,
 * looked for only when a server offers 8BITMIME, once.
 */
function messageFacts(prefix: Buffer, source: MessageSource): { size?: number; eightBit: () => boolean } {
  let eightBit: boolean | undefined;
  const size = source.fd === undefined ? undefined : fstatSync(source.fd).size + prefix.length;
  return {
    ...(size !== undefined ? { size } : {}),
    eightBit: () => (eightBit ??= readsEightBit(source)),
  };
}

/** A message that cannot be read says so when it is sent (READ_MESSAGE); here it is 7-bit. */
function readsEightBit(source: MessageSource): boolean {
  try {
    return hasEightBit(source.chunks());
  } catch {
    return false;
  }
}

function* wire(prefix: Buffer, source: MessageSource): Iterable<Buffer> {
  if (prefix.length > 0) yield prefix;
  yield* source.chunks();
}

function describe(signed: Signed): string[] {
  return signed.signatures.map((s) => `${s.type} d=${s.d} s=${s.s} a=${s.a}`);
}
