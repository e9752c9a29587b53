/**
 * `clientInfo(values)` — adds the labels `nodeName`, `podName`, `clusterName` to `connection.labels` from the
 * values the component passes (read from `NODE_NAME`, `POD_NAME`, `CLUSTER_NAME` at the process edge; this
 * element never reads the environment). Empty values are skipped; a label the request already has is
 * overwritten, as upstream does. Works on both client and server chains (NSC, NSMgr).
 * Mirrors `sdk/pkg/networkservice/common/clientinfo`. No background work.
 */
import { LABEL_CLUSTER_NAME, LABEL_NODE_NAME, LABEL_POD_NAME } from '../../api/constants.js';
import type { NetworkServiceElement } from '../../core/chain.js';

export const CLIENT_INFO = 'client-info';

export interface ClientInfoValues {
  readonly nodeName?: string;
  readonly podName?: string;
  readonly clusterName?: string;
}

export function clientInfo(values: ClientInfoValues = {}): NetworkServiceElement {
  const labels: Readonly<Record<string, string>> = Object.freeze(clientInfoLabels(values));
  return {
    name: CLIENT_INFO,
    async request(req, ctx, next) {
      const conn = req.connection!;
      conn.labels ??= {};
      Object.assign(conn.labels, labels);
      return next.request(req, ctx);
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}

/** Same labels for NSE registrations' per-service label sets (`network_service_labels[svc].labels`). */
export function clientInfoLabels(values: ClientInfoValues = {}): Record<string, string> {
  const out: Record<string, string> = {};
  if (values.nodeName) out[LABEL_NODE_NAME] = values.nodeName;
  if (values.podName) out[LABEL_POD_NAME] = values.podName;
  if (values.clusterName) out[LABEL_CLUSTER_NAME] = values.clusterName;
  return out;
}
