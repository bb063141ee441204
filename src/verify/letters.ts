// The DKVERIFY letters of the bltweb qmail DKIM patch (and, before the comma, of qmail-dk):
// one letter per DomainKeys status, a comma, one letter per DKIM status. An uppercase letter
// that names the message's status rejects it, a lowercase one defers it, any other accepts.
import { VerifyFailure } from './outcomes.ts';

/** libdomainkeys' DK_STAT_* in letter order: A is DK_STAT_OK ... K is DK_STAT_INTERNAL. */
export const DK_LETTERS = {
  A: 'OK', B: 'BADSIG', C: 'NOSIG', D: 'NOKEY', E: 'BADKEY', F: 'CANTVRFY',
  G: 'SYNTAX', H: 'NORESOURCE', I: 'ARGS', J: 'REVOKED', K: 'INTERNAL',
} as const;

/** libdkim's statuses as the bltweb patch letters them. */
export const DKIM_LETTERS = {
  A: 'OK', B: 'FAIL', C: 'BAD_SYNTAX', D: 'SIG BAD', E: 'SIG BAD (testing)', F: 'SIG EXPIRED',
  G: 'SELECTOR INVALID', H: 'SELECTOR MISMATCH', I: 'SELECTOR REVOKED', J: 'DOMAIN TOO LONG',
  K: 'DNS TEMP FAIL', L: 'DNS PERM FAIL', M: 'PUBLIC KEY INVALID', N: 'NO SIG', O: 'NO VALID SIG',
  P: 'BAD BODY HASH', Q: 'ALGORITHM MISMATCH', R: 'STAT INCOMPAT',
} as const;

export type DkLetter = keyof typeof DK_LETTERS;
export type DkimLetter = keyof typeof DKIM_LETTERS;

export interface LetterPolicy {
  /** The letters as configured, case kept. */
  readonly dk: string;
  readonly dkim: string;
}

export type Decision = 'accept' | 'reject' | 'defer';

/**
 * DKVERIFY as written: "" (verify, accept all), "DK,DKIM" or, as qmail-dk takes it, DomainKeys
 * letters alone. Anything else is a configuration error, never a silent accept-all.
 */
export function parseLetters(value: string): LetterPolicy {
  const match = /^([A-Ka-k]*)(?:,([A-Ra-r]*))?$/.exec(value);
  if (!match) throw new VerifyFailure('INTERNAL', `DKVERIFY is not "DomainKeys letters,DKIM letters": ${JSON.stringify(value)}`);
  return { dk: match[1] ?? '', dkim: match[2] ?? '' };
}

/** An uppercase match anywhere rejects; else a lowercase match defers; else accept. */
export function decide(policy: LetterPolicy, dk: DkLetter, dkim: DkimLetter): Decision {
  if (policy.dk.includes(dk) || policy.dkim.includes(dkim)) return 'reject';
  if (policy.dk.includes(dk.toLowerCase()) || policy.dkim.includes(dkim.toLowerCase())) return 'defer';
  return 'accept';
}
