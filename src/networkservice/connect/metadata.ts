/** Per-RPC token metadata (`nsm-client-token`, `nsm-client-token-expires`) sent on every NSM call. */
import { Metadata } from 'nice-grpc';
import { clientTokenMetadata, type TokenGenerator, type TokenRequest } from '../../core/token.js';

/** `peer`: the server the call goes to (its SPIFFE ID and NotAfter), when its certificate is known. */
export async function tokenMetadata(tokens: TokenGenerator, peer?: TokenRequest): Promise<Metadata> {
  return Metadata(clientTokenMetadata(await tokens.generate(peer)));
}
