/**
 * Where a heap's memory goes: reads a V8 heap snapshot (`.heapsnapshot`, as written by
 * `v8.writeHeapSnapshot`) and adds up the self sizes of its nodes by kind — objects by constructor name,
 * native (off-heap, e.g. ArrayBuffer backing stores) by name, everything else by node type (strings, code, arrays, closures, hidden/system objects). Shallow sizes:
 * what each kind itself occupies, not what it keeps alive.
 */
import { readFileSync, statSync } from 'node:fs';

export interface HeapSummary {
  /** Sum of all self sizes, MiB. */
  totalMiB: number;
  nodes: number;
  /** MiB by node type (object, string, code, closure, array, hidden, …). */
  byType: Record<string, number>;
  /** Largest kinds: objects by constructor, the rest by type; MiB and count. */
  top: Array<{ kind: string; count: number; mib: number }>;
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export function summarizeHeap(file: string, topN = 12): HeapSummary {
  const size = statSync(file).size;
  if (size > 450 * 2 ** 20) throw new Error(`${file}: ${(size / 2 ** 20).toFixed(0)} MiB, too large to read as one string`);
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const nf = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const byType = new Map<string, number>();
  const byKind = new Map<string, { count: number; bytes: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += nf) {
    const type = types[snap.nodes[i + iType]!] ?? '?';
    const size = snap.nodes[i + iSize]!;
    total += size;
    byType.set(type, (byType.get(type) ?? 0) + size);
    const name = snap.strings[snap.nodes[i + iName]!] ?? '?';
    const kind = type === 'object' ? name : type === 'native' ? `(native) ${name}` : `(${type})`;
    const k = byKind.get(kind) ?? { count: 0, bytes: 0 };
    k.count++;
    k.bytes += size;
    byKind.set(kind, k);
  }
  const mib = (b: number) => b / 2 ** 20;
  return {
    totalMiB: mib(total),
    nodes: snap.nodes.length / nf,
    byType: Object.fromEntries([...byType].sort((a, b) => b[1] - a[1]).map(([t, b]) => [t, mib(b)])),
    top: [...byKind]
      .sort((a, b) => b[1].bytes - a[1].bytes)
      .slice(0, topN)
      .map(([kind, v]) => ({ kind, count: v.count, mib: mib(v.bytes) })),
  };
}

/** One line: "total 41.2 MiB: (string) 12.1, Object 5.3 (30k), …". */
export function heapLine(h: HeapSummary, k = 8): string {
  const items = h.top.slice(0, k).map((t) => `${t.kind} ${t.mib.toFixed(1)} (${t.count >= 1000 ? `${(t.count / 1000).toFixed(0)}k` : t.count})`);
  return `heap snapshot ${h.totalMiB.toFixed(1)} MiB: ${items.join(', ')}`;
}
