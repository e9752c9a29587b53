/** Wire string constants of NSM (mechanism types, parameter keys, metadata keys, payloads, labels). */
export const CLS_LOCAL = 'LOCAL';
export const CLS_REMOTE = 'REMOTE';
export const MECH_KERNEL = 'KERNEL';
export const MECH_NOOP = 'NOOP';
/** Remote mechanisms (class REMOTE): kernel VXLAN for payload ETHERNET, WireGuard for payload IP. */
export const MECH_VXLAN = 'VXLAN';
export const MECH_WIREGUARD = 'WIREGUARD';
/** Common parameter keys of the remote mechanisms (api `common` package). */
export const PARAM_SRC_IP = 'src_ip';
export const PARAM_DST_IP = 'dst_ip';
export const PARAM_SRC_PORT = 'src_port';
export const PARAM_DST_PORT = 'dst_port';
export const PARAM_MTU = 'MTU';
export const PARAM_VNI = 'vni';
export const PARAM_SRC_PUBLIC_KEY = 'src_public_key';
export const PARAM_DST_PUBLIC_KEY = 'dst_public_key';
/** IANA VXLAN port, upstream's default for both ends. */
export const VXLAN_DEFAULT_PORT = 4789;
/** WireGuard's usual port; upstream's default for the client end. */
export const WIREGUARD_DEFAULT_PORT = 51820;
export const PARAM_NAME = 'name';
export const PARAM_INODE_URL = 'inodeURL';
export const LINUX_IF_MAX_LENGTH = 15;
export const PAYLOAD_ETHERNET = 'ETHERNET';
export const PAYLOAD_IP = 'IP';
export const MD_CLIENT_TOKEN = 'nsm-client-token';
export const MD_CLIENT_TOKEN_EXPIRES = 'nsm-client-token-expires';
export const MD_REGISTRY_PATH = 'path';
export const FORWARDER_SERVICE = 'forwarder';
export const DEFAULT_FORWARDER_LABELS: Readonly<Record<string, string>> = Object.freeze({ p2p: 'true' });
export const LABEL_NODE_NAME = 'nodeName';
export const LABEL_POD_NAME = 'podName';
export const LABEL_CLUSTER_NAME = 'clusterName';
export const METRIC_CLIENT_INTERFACE = 'client_interface';
export const METRIC_SERVER_INTERFACE = 'server_interface';
