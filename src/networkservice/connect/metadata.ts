/** Per-RPC token metadata (`nsm-client-token`, `nsm-client-token-expires`) sent on every NSM call. */
import { Metadata } from 'nice-grpc';
import { clientTokenMetadata, type TokenGenerator, type TokenRequest } from '../../core/token.js';
import type { ChannelPool } from '../../core/transport.js';
import { tokenRequestForPeer } from '../../security/token.js';

/** `peer`: the server the call goes to (its SPIFFE ID and NotAfter), when its certificate is known. */
export async function tokenMetadata(tokens: TokenGenerator, peer?: TokenRequest): Promise<Metadata> {
  return Metadata(clientTokenMetadata(await tokens.generate(peer)));
}

/**
 * Who a token sent to `url` is for: the server's SPIFFE ID and NotAfter as of the latest mTLS handshake
 * of the pool's channel to it (so call after `pool.dial`, which waits for the handshake), signed with the
 * SVID we presented in that handshake; undefined on a plaintext channel (the insecure mesh: no audience,
 * as before).
 */
export function serverTokenRequest(pool: ChannelPool, url: string): TokenRequest | undefined {
  const server = pool.serverIdentity(url);
  return server && tokenRequestForPeer(server);
}
