/**
 * IPAM server elements of an endpoint (NSE), placed after the common endpoint elements and before the
 * mechanism elements, in three parts:
 * - `point2point.ts`: `point2pointIpamServer`, address pairs per connection from a set of pools
 *   (upstream `ipam/point2pointipam`);
 * - `group.ts`: `groupIpamServer`, one point-to-point IPAM per `NSM_CIDR_PREFIX` group, and the group syntax
 *   (upstream `ipam/groupipam`);
 * - `policy.ts`: `strictIpamServer`, the `strict` policy that resets requested addresses outside the pools
 *   (upstream `ipam/strictipam`).
 * `ip-context.ts` holds what they share; `pool.ts` the address pool.
 */
export { DEFAULT_PREFIX_FIELD, type Point2PointIpamOptions } from './ip-context.js';
export { IpamExhaustedError, POINT2POINT_IPAM, point2pointIpamServer } from './point2point.js';
export { DEFAULT_IPAM_POLICY, IPAM_POLICIES, type IpamPolicy, STRICT_IPAM, strictIpamServer } from './policy.js';
export { GROUP_IPAM, type GroupIpamOptions, groupIpamServer, parseCidrGroups } from './group.js';
