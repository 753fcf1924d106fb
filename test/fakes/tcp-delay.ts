// A TCP proxy on 127.0.0.1 that holds every chunk for a while before passing it on, in order: a
// database behind it answers each round trip `roundTripMs` later (half the delay each way), as a
// server across a slow network would.
import net from 'node:net';

export class DelayProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  /** Chunks passed on, both directions (so a test can see the traffic went through here). */
  chunks = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    readonly roundTripMs: number,
  ) {}

  async start(): Promise<number> {
    this.server = net.createServer((client) => this.pipe(client));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  private pipe(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, this.targetHost);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    this.delayed(client, upstream);
    this.delayed(upstream, client);
  }

  // Each chunk leaves `roundTripMs / 2` after it arrived, and never before the one ahead of it.
  private delayed(from: net.Socket, to: net.Socket): void {
    let lastAt = 0;
    from.on('data', (chunk: Buffer) => {
      const at = Math.max(Date.now() + this.roundTripMs / 2, lastAt);
      lastAt = at;
      setTimeout(() => {
        this.chunks++;
        if (!to.destroyed) to.write(chunk);
      }, at - Date.now());
    });
    from.on('end', () => setTimeout(() => to.end(), Math.max(0, lastAt - Date.now())));
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
