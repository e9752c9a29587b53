/**
 * Per-connection state keys around the next hop, shared by `discover`/`discover-forwarder` (which choose
 * it), `connect` (which uses it) and `monitor`/`trim-path` (which need to know a downstream exists).
 */
import { StateKey } from '../../core/state.js';

/** The next hop's URL for this Request. Set by discover / discover-forwarder before `connect`. */
export const NEXT_URL = new StateKey<string>('connect.nextUrl');

/**
 * The URL `connect` last reached successfully for this connection. Present exactly while the connection
 * has a downstream; `connect` uses it for Close, `monitor` for passthrough, `trim-path` to skip trimming.
 */
export const CONNECTED_URL = new StateKey<string>('connect.connectedUrl');
