// A winston transport that sends RFC 3164 messages over UDP. Node has no Unix datagram sockets,
// so /dev/log is out of reach; every syslog daemon can listen on UDP (rsyslog: imudp).
import { createSocket } from 'node:dgram';
import TransportStream from 'winston-transport';

const FACILITY_MAIL = 2;
const SEVERITY_INFO = 6;

export class SyslogTransport extends TransportStream {
  private readonly host: string;
  private readonly port: number;

  constructor(host: string, port: number) {
    super();
    this.host = host;
    this.port = port;
  }

  override log(info: { message?: unknown }, done: () => void): void {
    const priority = FACILITY_MAIL * 8 + SEVERITY_INFO;
    const line = `<${priority}>qmail-remote-dkim[${process.pid}]: ${String(info.message ?? '')}`;
    const socket = createSocket(this.host.includes(':') ? 'udp6' : 'udp4');
    socket.on('error', () => socket.close());
    socket.send(line, this.port, this.host, () => {
      socket.close();
      done();
    });
  }
}
