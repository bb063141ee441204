// Users and groups as the key tools need them: who qmailr is, which groups it is in, what the
// qmail group's id is, and names for the ids a key file is owned by. Read from /etc/passwd and
// /etc/group (the files qmail's own install reads), so an audit can be pointed at copies of
// them, and a test need not add users to the system it runs on.
import { readFileSync } from 'node:fs';

export const PASSWD_FILE = '/etc/passwd';
export const GROUP_FILE = '/etc/group';

export interface User {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

export interface Group {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

export interface Accounts {
  readonly users: readonly User[];
  readonly groups: readonly Group[];
}

/** The accounts in both files; a file that cannot be read counts as empty. */
export function readAccounts(passwdFile = PASSWD_FILE, groupFile = GROUP_FILE): Accounts {
  return { ...readUsers(passwdFile), ...readGroups(groupFile) };
}

/** The users alone: a command that needs no group reads no group file. */
export function readUsers(passwdFile = PASSWD_FILE): Pick<Accounts, 'users'> {
  return { users: readTable(passwdFile).flatMap(parseUser) };
}

/** The groups alone: a command that needs no user reads no passwd file. */
export function readGroups(groupFile = GROUP_FILE): Pick<Accounts, 'groups'> {
  return { groups: readTable(groupFile).flatMap(parseGroup) };
}

export function findGroup(accounts: Pick<Accounts, 'groups'>, name: string): Group | undefined {
  return accounts.groups.find((group) => group.name === name);
}

export function findUser(accounts: Pick<Accounts, 'users'>, name: string): User | undefined {
  return accounts.users.find((user) => user.name === name);
}

/** The user's primary group and every group that lists it as a member (initgroups). */
export function groupIds(accounts: Accounts, user: User): Set<number> {
  const ids = new Set([user.gid]);
  for (const group of accounts.groups) if (group.members.includes(user.name)) ids.add(group.gid);
  return ids;
}

export function userName(accounts: Accounts, uid: number): string {
  return accounts.users.find((user) => user.uid === uid)?.name ?? String(uid);
}

export function groupName(accounts: Accounts, gid: number): string {
  return accounts.groups.find((group) => group.gid === gid)?.name ?? String(gid);
}

function readTable(path: string): string[][] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#') && !line.startsWith('+') && !line.startsWith('-'))
    .map((line) => line.split(':'));
}

// name:password:uid:gid:gecos:home:shell
function parseUser(fields: string[]): User[] {
  const [name, , uid, gid] = fields;
  if (!name || !isId(uid) || !isId(gid)) return [];
  return [{ name, uid: Number(uid), gid: Number(gid) }];
}

// name:password:gid:member,member
function parseGroup(fields: string[]): Group[] {
  const [name, , gid, members] = fields;
  if (!name || !isId(gid)) return [];
  return [{ name, gid: Number(gid), members: (members ?? '').split(',').filter((member) => member !== '') }];
}

function isId(text: string | undefined): text is string {
  return text !== undefined && /^\d{1,10}$/.test(text);
}
