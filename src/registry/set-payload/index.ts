/**
 * Fills an empty NetworkService payload with `IP` on Register, so every stored NetworkService has a
 * payload that `discover` can copy onto connections. NS registry chain, before `store`; no background
 * work. Mirrors upstream `sdk:pkg/registry/common/setpayload`.
 */
import { PAYLOAD_IP } from '../../api/constants.js';
import { registryPassThrough, type NsElement } from '../../core/chain.js';

export const DEFAULT_PAYLOAD = PAYLOAD_IP;

export function setPayloadNsServer(options: { payload?: string } = {}): NsElement {
  const payload = options.payload ?? DEFAULT_PAYLOAD;
  return registryPassThrough('set-payload', {
    register: (ns, ctx, next) => next.register(ns.payload === '' ? { ...ns, payload } : ns, ctx),
  });
}
