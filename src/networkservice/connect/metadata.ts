/** Per-RPC token metadata (`nsm-client-token`, `nsm-client-token-expires`) sent on every NSM call. */
import { Metadata } from 'nice-grpc';
import { MD_CLIENT_TOKEN, MD_CLIENT_TOKEN_EXPIRES } from '../../api/constants.js';
import { formatRfc3339Nano, type TokenGenerator } from '../../core/token.js';

export async function tokenMetadata(tokens: TokenGenerator): Promise<Metadata> {
  const { token, expires } = await tokens.generate();
  return Metadata({ [MD_CLIENT_TOKEN]: token, [MD_CLIENT_TOKEN_EXPIRES]: formatRfc3339Nano(expires) });
}
