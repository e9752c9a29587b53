import { storeContract } from '../store-contract.js';
import { memoryRegistryStore } from './index.js';

storeContract('memory', async () => {
  const store = memoryRegistryStore();
  return {
    store,
    listeners: () => store.ns.watcherCount + store.nse.watcherCount,
    cleanup: () => store.close(),
  };
});
