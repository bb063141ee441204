// Connecting to one address. The place where what happens around connect() belongs: the
// source address to bind, the address family, qmail's tcpto table of hosts that timed out.
import { connect, type Socket } from 'node:net';

// setTimeout turns anything longer into 1 ms, with a warning on stderr (the report pipe).
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The source address could not be bound: this host does not have it, or it is taken. */
export const BIND_FAILED = 'bind-failed';
/** timeoutconnect passed: what qmail's tcpto counts. */
export const TIMED_OUT = 'timed-out';
const BIND_ERRORS = new Set(['EADDRNOTAVAIL', 'EADDRINUSE', 'EINVAL', 'EAFNOSUPPORT']);

/**
 * qmail's timeoutconn(): the connected socket; TIMED_OUT when it takes too long; null when it
 * fails otherwise; BIND_FAILED when the source address `localAddress` cannot be used (binding.ts).
 */
export function connectTcp(ip: string, port: number, timeoutMs: number, localAddress?: string): Promise<Socket | null | typeof BIND_FAILED | typeof TIMED_OUT> {
  return new Promise((resolve) => {
    let socket: Socket;
    try {
      socket = connect({ host: ip, port, noDelay: true, ...(localAddress !== undefined ? { localAddress } : {}) });
    } catch {
      resolve(null); // a bad port or address: as unreachable as a refused one
      return;
    }
    let bindFailed = false;
    let timedOut = false;
    const settle = (connected: boolean): void => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      if (!connected) socket.destroy();
      resolve(connected ? socket : bindFailed ? BIND_FAILED : timedOut ? TIMED_OUT : null);
    };
    const onError = (error: NodeJS.ErrnoException): void => {
      bindFailed = localAddress !== undefined && error.syscall === 'bind' && BIND_ERRORS.has(error.code ?? '');
      settle(false);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      settle(false);
    }, timeoutMs);
    socket.once('error', onError);
    socket.once('connect', () => {
      // Commands are small writes answered one at a time; Nagle would hold each back until
      // the previous one is acknowledged, about 40 ms per delivery against delayed ACKs.
      socket.setNoDelay(true);
      settle(true);
    });
  });
}

/** Seconds from a control file to a timer value Node accepts; "0" is kept as short as can be. */
export function milliseconds(seconds: number): number {
  if (!Number.isFinite(seconds)) return MAX_TIMER_MS;
  return Math.min(Math.max(Math.round(seconds * 1000), 1), MAX_TIMER_MS);
}
