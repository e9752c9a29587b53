/**
 * The UDP ports one forwarder gives its WireGuard ends: `count` ports from `first` (51820), one per
 * connection, shared by the client and the server elements of one forwarder (a node can be both ends of
 * different connections). Taking a port that is free returns it; a preferred port (the one a connection
 * had before a restart) is given when free. Exhaustion is a `ResourceExhaustedError`.
 */
import { WIREGUARD_DEFAULT_PORT } from '../../../api/constants.js';
import { InvalidArgumentError, ResourceExhaustedError } from '../../../core/errors.js';

export const DEFAULT_WIREGUARD_PORTS = 1024;

export class PortPool {
  readonly #used = new Set<number>();
  #cursor = 0;

  constructor(
    readonly first: number = WIREGUARD_DEFAULT_PORT,
    readonly count: number = DEFAULT_WIREGUARD_PORTS,
  ) {
    if (!Number.isInteger(first) || first < 1 || first > 65535) throw new InvalidArgumentError('first', first, 'not a UDP port (1–65535)');
    if (!Number.isInteger(count) || count < 1 || first + count - 1 > 65535) throw new InvalidArgumentError('count', count, `must be 1–${65536 - first} from port ${first}`);
  }

  #inRange(p: number): boolean {
    return Number.isInteger(p) && p >= this.first && p < this.first + this.count;
  }

  /** A free port: `preferred` when it is in range and free, else the next free one. */
  take(preferred?: number): number {
    if (preferred !== undefined && this.#inRange(preferred) && !this.#used.has(preferred)) {
      this.#used.add(preferred);
      return preferred;
    }
    for (let i = 0; i < this.count; i++) {
      const p = this.first + ((this.#cursor + i) % this.count);
      if (!this.#used.has(p)) {
        this.#used.add(p);
        this.#cursor = (p - this.first + 1) % this.count;
        return p;
      }
    }
    throw new ResourceExhaustedError(`all ${this.count} WireGuard ports from ${this.first} are in use`);
  }

  release(port: number): void {
    this.#used.delete(port);
  }

  get inUse(): number {
    return this.#used.size;
  }
}
