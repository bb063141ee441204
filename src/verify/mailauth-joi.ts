// What mailauth asks of joi on the verify path, and nothing more. mailauth validates two values
// with it there: a DKIM key record's p= (`Joi.string().base64({ paddingRequired: false })`, in
// lib/tools.js) and the domain SPF is checked for (`Joi.string().domain({ allowUnicode: false,
// tlds: false })`, in lib/spf/index.js). joi itself is about 300 KB, and loading it builds every
// type it has: about a third of what loading mailauth's verifiers cost each verification.
// The verify bundle gives mailauth this module in joi's place (scripts/bundle.mjs).
//
// The answers are joi's: the domain check is the function joi calls (@hapi/address's
// isDomainValid, with these options as joi passes them on), the base64 check RFC 4648 §4 with
// the padding optional, as joi's rule reads it; test/verify/mailauth-joi.test.ts holds both to
// joi itself, input by input. Any other use throws when mailauth loads, so an upgrade of mailauth
// that asks more of joi fails the tests of the bundle, not a message.
// From the module that defines it: the package's index also loads its e-mail, IP and URI
// validators, which build their regular expressions at load (a few ms of every verification).
import { isDomainValid } from '@hapi/address/dist/domain.js';

/** What mailauth reads of a validation: whether `error` is set. */
export interface Validation {
  readonly value: unknown;
  readonly error?: Error;
}

interface Schema {
  validate(value: unknown): Validation;
}

const BASE64_DIGITS = /^[A-Za-z0-9+/]*$/;

/** Base64 (RFC 4648 §4): whole groups of four, the last of two or three digits padded or not. */
export function isBase64(value: string): boolean {
  const padding = value.endsWith('==') ? 2 : value.endsWith('=') ? 1 : 0;
  const digits = value.length - padding;
  if (!BASE64_DIGITS.test(value.slice(0, digits))) return false;
  const rest = digits % 4;
  if (rest === 1) return false;
  return padding === 0 || rest + padding === 4;
}

const DOMAIN_OPTIONS = { allowUnicode: false, tlds: false } as const;
/** The object joi hands on; @hapi/address's types leave out the `tlds: false` its code reads. */
const ADDRESS_OPTIONS = DOMAIN_OPTIONS as unknown as Parameters<typeof isDomainValid>[1];

/** A joi string schema with one rule: absent, or a non-empty string that `valid` accepts. */
function stringSchema(rule: string, valid: (value: string) => boolean): Schema {
  return {
    validate(value: unknown): Validation {
      // joi's schemas are optional unless marked required: no value is no error.
      if (value === undefined) return { value };
      if (typeof value !== 'string') return { value, error: new Error('"value" must be a string') };
      if (value === '') return { value, error: new Error('"value" is not allowed to be empty') };
      return valid(value) ? { value } : { value, error: new Error(`"value" must be a valid ${rule}`) };
    },
  };
}

function sameOptions(given: unknown, expected: Record<string, unknown>): boolean {
  if (typeof given !== 'object' || given === null) return false;
  const keys = Object.keys(given);
  return keys.length === Object.keys(expected).length && keys.every((key) => (given as Record<string, unknown>)[key] === expected[key]);
}

function unsupported(what: string): never {
  throw new Error(`mailauth asked joi for ${what}, which src/verify/mailauth-joi.ts does not give`);
}

export function string(): { base64(options?: unknown): Schema; domain(options?: unknown): Schema } {
  return {
    base64(options) {
      if (!sameOptions(options, { paddingRequired: false })) unsupported(`string().base64(${JSON.stringify(options)})`);
      return stringSchema('base64 string', isBase64);
    },
    domain(options) {
      if (!sameOptions(options, DOMAIN_OPTIONS)) unsupported(`string().domain(${JSON.stringify(options)})`);
      return stringSchema('domain', (value) => isDomainValid(value, ADDRESS_OPTIONS));
    },
  };
}
