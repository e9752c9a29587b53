/**
 * `nsm health --url <nsm url> [--service name] [--timeout 1s]`: a grpc.health.v1 Check against any nsm
 * server (the image's probe for unix-socket-only pods, like grpc-health-probe upstream). Exit 0 when
 * SERVING; 1 when not serving, unreachable or timed out, with the reason on stderr; 2 on a bad argument.
 */
import type { Command } from 'commander';
import { createChannel, createClient } from 'nice-grpc';
import { HealthCheckResponse_ServingStatus, HealthDefinition, healthCheckResponse_ServingStatusToJSON } from '../../api/gen/health.js';
import { parseDuration } from '../../components/config.js';
import { errorMessage } from '../../core/errors.js';
import { grpcTarget, parseUrl } from '../../core/transport.js';

export const DEFAULT_HEALTH_TIMEOUT = '1s';

/** Returns the exit code and prints the result. */
export async function checkHealth(url: string, opts: { service?: string; timeoutMs: number }): Promise<number> {
  const channel = createChannel(grpcTarget(parseUrl(url, '--url')));
  try {
    const client = createClient(HealthDefinition, channel);
    const res = await client.check({ service: opts.service ?? '' }, { signal: AbortSignal.timeout(opts.timeoutMs) });
    const status = healthCheckResponse_ServingStatusToJSON(res.status);
    if (res.status === HealthCheckResponse_ServingStatus.SERVING) {
      process.stdout.write(`${url}: ${status}\n`);
      return 0;
    }
    process.stderr.write(`${url}: ${status}\n`);
    return 1;
  } catch (err) {
    process.stderr.write(`${url}: health check failed: ${errorMessage(err)}\n`);
    return 1;
  } finally {
    channel.close();
  }
}

export function register(program: Command): void {
  program
    .command('health')
    .description('check a server with the gRPC health service (grpc.health.v1); exit 0 when SERVING')
    .requiredOption('--url <url>', 'server URL: unix:///path or tcp://host:port')
    .option('--service <name>', 'service name to check (empty: the whole server)', '')
    .option('--timeout <duration>', 'deadline of the check (Go duration)', DEFAULT_HEALTH_TIMEOUT)
    .action(async (o: { url: string; service: string; timeout: string }) => {
      let timeoutMs: number;
      try {
        parseUrl(o.url, '--url');
        timeoutMs = parseDuration(o.timeout);
      } catch (err) {
        process.stderr.write(`nsm health: ${errorMessage(err)}\n`);
        process.exit(2);
      }
      process.exitCode = await checkHealth(o.url, { service: o.service, timeoutMs });
    });
}
