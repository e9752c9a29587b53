/** `begin`: per-connection serialization, state and event factory. See server.ts / client.ts. */
export { beginServer } from './server.js';
export { beginClient } from './client.js';
export {
  DEFAULT_EVENT_TIMEOUT_MS,
  defaultReselect,
  reselectWithSameEndpoint,
  type BeginDeps,
  type BeginElement,
  type BeginOptions,
  type ReselectFunc,
} from './core.js';
export { KeyedSerializer } from './serializer.js';
