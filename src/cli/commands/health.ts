/**
 * `nsm health --url <nsm url> [--service name] [--timeout 1s]`: a grpc.health.v1 Check against any nsm
 * server (the image's probe for unix-socket-only pods, like grpc-health-probe upstream). Exit 0 when
 * SERVING; 1 when not serving, unreachable, timed out or without an identity to call with, with the reason
 * on stderr; 2 on a bad argument.
 *
 * Identity as every nsm client: `NSM_INSECURE=true` → plaintext; `SPIFFE_ENDPOINT_SOCKET` → mTLS with an
 * SVID from that Workload API (a pod with a SPIRE agent socket); else the local mesh of the run dir (a
 * `node/<node>/cli` SVID from its CA, root only; plaintext when it runs insecure). With mTLS, the server's
 * SPIFFE ID from the handshake is printed beside the status.
 */
import type { Command } from 'commander';
import { HealthCheckResponse_ServingStatus, HealthDefinition, healthCheckResponse_ServingStatusToJSON } from '../../api/gen/health.js';
import { parseDuration } from '../../components/config.js';
import { errorMessage } from '../../core/errors.js';
import { createClient, openChannel, parseUrl, serverIdentityOf } from '../../core/transport.js';
import { addRunDirOption, meshContext } from '../../local/cli.js';
import { commandSecurity } from '../../local/identity.js';
import type { TransportSecurity } from '../../security/tls.js';

export const DEFAULT_HEALTH_TIMEOUT = '1s';

/** Returns the exit code and prints the result. */
export async function checkHealth(url: string, opts: { service?: string; timeoutMs: number; security: TransportSecurity }): Promise<number> {
  const channel = (parseUrl(url, '--url'), openChannel(url, opts.security));
  try {
    const client = createClient(HealthDefinition, channel);
    const res = await client.check({ service: opts.service ?? '' }, { signal: AbortSignal.timeout(opts.timeoutMs) });
    const status = healthCheckResponse_ServingStatusToJSON(res.status);
    const peer = serverIdentityOf(channel);
    const who = peer ? ` (${peer.spiffeId})` : '';
    if (res.status === HealthCheckResponse_ServingStatus.SERVING) {
      process.stdout.write(`${url}: ${status}${who}\n`);
      return 0;
    }
    process.stderr.write(`${url}: ${status}${who}\n`);
    return 1;
  } catch (err) {
    process.stderr.write(`${url}: health check failed: ${errorMessage(err)}\n`);
    return 1;
  } finally {
    channel.close();
  }
}

export function register(program: Command): void {
  addRunDirOption(
    program
      .command('health')
      .description('check a server with the gRPC health service (grpc.health.v1); exit 0 when SERVING')
      .requiredOption('--url <url>', 'server URL: unix:///path or tcp://host:port')
      .option('--service <name>', 'service name to check (empty: the whole server)', '')
      .option('--timeout <duration>', 'deadline of the check (Go duration)', DEFAULT_HEALTH_TIMEOUT),
  ).action(async (o: { url: string; service: string; timeout: string; runDir?: string }) => {
    let timeoutMs: number;
    try {
      parseUrl(o.url, '--url');
      timeoutMs = parseDuration(o.timeout);
    } catch (err) {
      process.stderr.write(`nsm health: ${errorMessage(err)}\n`);
      process.exit(2);
    }
    let sec: Awaited<ReturnType<typeof commandSecurity>>;
    try {
      const ctx = meshContext(o.runDir);
      sec = await commandSecurity({ paths: ctx.paths, node: ctx.hostname, waitMs: Math.max(timeoutMs, 1000) });
    } catch (err) {
      process.stderr.write(`nsm health: ${errorMessage(err)}\n`);
      process.exitCode = 1;
      return;
    }
    try {
      process.exitCode = await checkHealth(o.url, { service: o.service, timeoutMs, security: sec.security });
    } finally {
      sec.close();
    }
  });
}
