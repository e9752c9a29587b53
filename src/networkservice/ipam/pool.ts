/**
 * A pool of free addresses of one CIDR, kept as sorted disjoint ranges so a /64 costs as little as a /31.
 * Mirrors the role of upstream `sdk/pkg/tools/ippool` (lowest-first allocation, per-call exclusions).
 */
import { type Cidr, type IpFamily, contains, firstAddress, formatCidr, lastAddress, mask } from '../../api/cidr.js';

export type Range = readonly [bigint, bigint];

export class IpPool {
  readonly family: IpFamily;
  readonly cidr: Cidr;
  #free: Array<[bigint, bigint]>;

  constructor(cidr: Cidr) {
    this.cidr = cidr;
    this.family = cidr.family;
    this.#free = [[firstAddress(cidr), lastAddress(cidr)]];
  }

  toString(): string {
    return formatCidr(this.cidr);
  }

  contains(v: bigint): boolean {
    return (v & mask(this.family, this.cidr.prefix)) === this.cidr.network;
  }

  containsAddress(ip: string): boolean {
    return contains(this.cidr, ip);
  }

  isFree(v: bigint): boolean {
    return this.#free.some(([a, b]) => a <= v && v <= b);
  }

  /** Removes `v` from the free set; false if it is outside the pool or already taken. */
  take(v: bigint): boolean {
    const i = this.#free.findIndex(([a, b]) => a <= v && v <= b);
    if (i < 0) return false;
    const [a, b] = this.#free[i];
    const parts: Array<[bigint, bigint]> = [];
    if (a < v) parts.push([a, v - 1n]);
    if (v < b) parts.push([v + 1n, b]);
    this.#free.splice(i, 1, ...parts);
    return true;
  }

  /** Returns `v` to the free set (no-op if outside the pool or already free). */
  release(v: bigint): void {
    if (!this.contains(v) || this.isFree(v)) return;
    let i = 0;
    while (i < this.#free.length && this.#free[i][0] < v) i++;
    this.#free.splice(i, 0, [v, v]);
    // Merge with neighbours.
    if (i + 1 < this.#free.length && this.#free[i + 1][0] === v + 1n) {
      this.#free[i][1] = this.#free[i + 1][1];
      this.#free.splice(i + 1, 1);
    }
    if (i > 0 && this.#free[i - 1][1] === v - 1n) {
      this.#free[i - 1][1] = this.#free[i][1];
      this.#free.splice(i, 1);
    }
  }

  /** The lowest free address not inside any of `excluded` (ranges of this family), or undefined. */
  lowestFree(excluded: readonly Range[]): bigint | undefined {
    for (const [a, b] of this.#free) {
      let c = a;
      let moved = true;
      while (moved && c <= b) {
        moved = false;
        for (const [x, y] of excluded) {
          if (x <= c && c <= y) {
            c = y + 1n;
            moved = true;
          }
        }
      }
      if (c <= b) return c;
    }
    return undefined;
  }

  /** Number of free addresses (for tests and metrics). */
  get freeCount(): bigint {
    return this.#free.reduce((n, [a, b]) => n + (b - a + 1n), 0n);
  }
}

export function isExcluded(v: bigint, excluded: readonly Range[]): boolean {
  return excluded.some(([x, y]) => x <= v && v <= y);
}
