// The admin commands' exit statuses, in qmail's convention: 0 done, 100 a permanent problem
// with what was asked (bad usage, a key file already there), 111 a temporary one (a control
// file or key that cannot be read right now). `keys` adds 1: the audit found a problem.
export const EXIT_OK = 0;
export const EXIT_PROBLEMS = 1;
export const EXIT_USAGE = 100;
export const EXIT_TEMPORARY = 111;
