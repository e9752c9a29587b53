/**
 * Per-connection state keys around the next hop, shared by `discover`/`discover-forwarder` (which choose
 * it, in `CLIENT_URL`), `connect` (which uses it) and `monitor`/`trim-path` (which need to know a downstream exists).
 */
import { StateKey } from '../../core/state.js';

/**
 * The URL `connect` last reached successfully for this connection. Present exactly while the connection
 * has a downstream; `connect` uses it for Close, `monitor` for passthrough, `trim-path` to skip trimming.
 */
export const CONNECTED_URL = new StateKey<string>('connect.connectedUrl');
