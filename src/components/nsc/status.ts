/**
 * The NSC's status: each connection's state, the connection as the chain last returned it, and a
 * summary of the heal events. It is fed by the heal client's event stream (`consume`), by the `track`
 * element (every successful Request: first, refresh, heal) and by the NSC (established, closed).
 *
 * With a file (NSM_STATUS_FILE) every change is written there as JSON, asynchronously, via a temp file
 * and a rename so a reader never sees half a file. Writes coalesce: at most one is in flight and one
 * more is pending, whatever the burst; each writes the state as it is when it starts. `flush()` waits
 * for the last. `nsm status` and `nsm … --wait` (src/local) read this format; keep it stable.
 */
import { rename, writeFile } from 'node:fs/promises';
import { Connection, type Connection as ConnectionT } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import type { Clock } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { HealEvent } from '../../networkservice/heal/index.js';

export interface NscStatus {
  name: string;
  connections: Array<{ id: string; networkService: string; state: 'connecting' | 'connected' | 'healing'; connection?: unknown }>;
  heal: { events: number; healed: number; last?: HealEvent; lastHeal?: HealEvent };
  updatedAt: string;
}

type ConnectionStatus = NscStatus['connections'][number];

/** Heal events kept in memory (and counted in the file). */
export const HEAL_EVENTS_KEPT = 200;

export class StatusBoard {
  /** The latest heal events, oldest first (at most HEAL_EVENTS_KEPT). */
  readonly healEvents: HealEvent[] = [];
  readonly #states = new Map<string, ConnectionStatus>();
  readonly #current = new Map<string, ConnectionT>();
  readonly #deps: { readonly name: string; readonly file?: string; readonly clock: Clock; readonly log: Logger };
  #dirty = false;
  #writing: Promise<void> | undefined;
  #writes = 0;

  constructor(deps: { readonly name: string; readonly file?: string; readonly clock: Clock; readonly log: Logger }) {
    this.#deps = deps;
  }

  /** The connections as last returned by the chain. */
  connections(): ConnectionT[] {
    return [...this.#current.values()];
  }

  connecting(req: NetworkServiceRequest): void {
    const { id, networkService } = req.connection!;
    this.#states.set(id, { id, networkService, state: 'connecting' });
  }

  /** A Request of the connection succeeded (first, refresh or heal). */
  updated(conn: ConnectionT): void {
    this.#current.set(conn.id, conn);
    this.#schedule();
  }

  /** The first Request of the connection succeeded. */
  established(conn: ConnectionT): void {
    const s = this.#states.get(conn.id);
    if (s) s.state = 'connected';
    this.updated(conn);
  }

  closed(id: string): void {
    this.#current.delete(id);
    this.#schedule();
  }

  heal(e: HealEvent): void {
    this.healEvents.push(e);
    if (this.healEvents.length > HEAL_EVENTS_KEPT) this.healEvents.splice(0, this.healEvents.length - HEAL_EVENTS_KEPT);
    const s = this.#states.get(e.connId);
    if (s && e.type !== 'suspect' && e.type !== 'cleared') s.state = e.type === 'healed' ? 'connected' : 'healing';
    this.#schedule();
  }

  /** Reads heal events until the stream ends. */
  async consume(events: AsyncIterable<HealEvent>): Promise<void> {
    for await (const e of events) this.heal(e);
  }

  snapshot(): NscStatus {
    const healed = this.healEvents.filter((e) => e.type === 'healed');
    return {
      name: this.#deps.name,
      connections: [...this.#states.values()].map((s) => {
        const conn = this.#current.get(s.id);
        return { ...s, connection: conn ? Connection.toJSON(conn) : undefined };
      }),
      heal: { events: this.healEvents.length, healed: healed.length, last: this.healEvents.at(-1), lastHeal: healed.at(-1) },
      updatedAt: new Date(this.#deps.clock.now()).toISOString(),
    };
  }

  /** Status files written so far. */
  get writes(): number {
    return this.#writes;
  }

  /** Resolves when every change so far is on disk (or failed to be written, logged). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  /** An element that records every successful Request passing through it. */
  tracker(): NetworkServiceElement {
    return {
      name: 'track',
      request: async (req, ctx, next) => {
        const conn = await next.request(req, ctx);
        this.updated(conn);
        return conn;
      },
      close: (conn, ctx, next) => next.close(conn, ctx),
    };
  }

  #schedule(): void {
    if (!this.#deps.file) return;
    this.#dirty = true;
    this.#writing ??= this.#writeWhileDirty(this.#deps.file);
  }

  async #writeWhileDirty(file: string): Promise<void> {
    while (this.#dirty) {
      this.#dirty = false;
      try {
        await writeFile(`${file}.tmp`, JSON.stringify(this.snapshot(), null, 2));
        await rename(`${file}.tmp`, file);
        this.#writes++;
      } catch (err) {
        this.#deps.log.warn({ err: errorMessage(err), file }, 'cannot write status file');
      }
    }
    this.#writing = undefined;
  }
}
