import { probeContract } from '../probe-contract.js';
import { FakeDataPlane } from './index.js';
import { fakeProbe } from './probe.js';

let n = 0;
probeContract('fake', async () => {
  const dp = new FakeDataPlane();
  const id = ++n;
  const nsA = `nsc-pod-${id}`;
  const nsB = `nse-pod-${id}`;
  return {
    dp,
    nsA,
    nsB,
    probe: fakeProbe(dp, { interval: 20 }),
    break: {
      setDown: async (ns, name) => dp.setDown(ns, name),
      deleteLink: async (ns, name) => dp.deleteLink(ns, name),
      flushAddrs: async (ns, name) => dp.flushAddrs(ns, name),
      delRoute: async (ns, name, prefix) => dp.delRoute(ns, name, prefix),
    },
    nudge: async () => undefined,
    processes: async () => 0,
    cleanup: async () => {
      dp.deleteNetns(nsA);
      dp.deleteNetns(nsB);
    },
  };
});
