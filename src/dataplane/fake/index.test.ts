import { dataPlaneContract } from '../contract.js';
import { tunnelContract } from '../contract-tunnel.js';
import { FakeDataPlane } from './index.js';

let n = 0;
dataPlaneContract('fake', async () => {
  const dp = new FakeDataPlane();
  const id = ++n;
  const nsA = `nsc-pod-${id}`;
  const nsB = `nse-pod-${id}`;
  return {
    dp,
    nsA,
    nsB,
    break: {
      setDown: async (ns, name) => dp.setDown(ns, name),
      deleteLink: async (ns, name) => dp.deleteLink(ns, name),
      flushAddrs: async (ns, name) => dp.flushAddrs(ns, name),
      delRoute: async (ns, name, prefix) => dp.delRoute(ns, name, prefix),
      addAddr: async (ns, name, cidr) => dp.addAddr(ns, name, cidr),
      addForeignLink: async (ns, name) => void dp.addForeignLink(ns, name),
    },
    inspect: async (ns, name) => {
      const l = dp.link(ns, name);
      if (!l) return { exists: false, up: false, ifindex: 0, mac: '', mtu: 0, addrs: [], routes: [] };
      return { exists: true, up: l.up, ifindex: l.ifindex, mac: l.mac, mtu: l.mtu, ...(l.alias !== undefined ? { alias: l.alias } : {}), addrs: l.addrs, routes: l.routes };
    },
    links: async (ns) => dp.links(ns).map((l) => l.name).sort(),
    ping: async (ns, addr) => dp.reachable(ns, addr),
    restart: () => dp.restarted(),
    cleanup: async () => {
      dp.deleteNetns(nsA);
      dp.deleteNetns(nsB);
    },
  };
});

let m = 0;
tunnelContract('fake', async () => {
  const id = ++m;
  const dpA = new FakeDataPlane({ tunnelNetns: `node-a-${id}` });
  const dpB = dpA.onNode(`node-b-${id}`);
  const podA = `pod-a-${id}`;
  const podB = `pod-b-${id}`;
  return {
    dpA,
    dpB,
    ipA: '10.231.0.1',
    ipB: '10.231.0.2',
    podA,
    podB,
    break: {
      setDown: async (ns, name) => dpA.setDown(ns, name),
      deleteLink: async (ns, name) => dpA.deleteLink(ns, name),
      flushAddrs: async (ns, name) => dpA.flushAddrs(ns, name),
      delRoute: async (ns, name, prefix) => dpA.delRoute(ns, name, prefix),
      addForeignLink: async (ns, name) => void dpA.addForeignLink(ns, name),
    },
    inspect: async (ns, name) => {
      const l = dpA.link(ns, name);
      if (!l) return { exists: false, up: false, ifindex: 0, mac: '', mtu: 0, addrs: [], routes: [] };
      return { exists: true, up: l.up, ifindex: l.ifindex, mac: l.mac, mtu: l.mtu, ...(l.alias !== undefined ? { alias: l.alias } : {}), addrs: l.addrs, routes: l.routes };
    },
    links: async (ns) => dpA.links(ns).map((l) => l.name).sort(),
    // The fake models no devices in the node netns: what is left is a tunnel end whose pod is gone.
    leftovers: async () => dpA.namespaces().filter((n) => n.startsWith('node-')),
    ping: async (ns, addr) => dpA.reachable(ns, addr),
    restartA: () => dpA.restarted(),
    cleanup: async () => {
      dpA.deleteNetns(podA);
      dpA.deleteNetns(podB);
    },
  };
});
