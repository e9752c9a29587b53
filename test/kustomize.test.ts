/**
 * Every kustomization under deployments/ renders with `kubectl kustomize` (offline), and every rendered
 * object passes a small offline validator for the kinds we use (no cluster, no OpenAPI download): known
 * apiVersion/kind, names, required fields of Deployment/DaemonSet/Service/ServiceAccount/ClusterRole(
 * Binding)/Namespace/CRD/ConfigMap, container env/ports/probes/volume shapes, `$(VAR)` references to
 * earlier env vars, and NetworkService/NetworkServiceEndpoint objects against our CRDs' schema and the
 * CR converters. The dataplane-interrupt README's heredocs are extracted and rendered the same way.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { nseFromResource, nsFromResource } from '../src/registry/cr.js';
import { SPIRE_VERSION } from './spire.js';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const DEPLOY = join(ROOT, 'deployments');
const EXAMPLE = join(DEPLOY, 'examples/heal/dataplane-interrupt');
/** Upstream's value (deployments-k8s): the SPIRE agent's Workload API on the node. */
const SPIFFE_ENDPOINT_SOCKET = 'unix:///run/spire/sockets/agent.sock';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function kubectlKustomize(dir: string): Promise<string> {
  return new Promise((res, rej) =>
    execFile('kubectl', ['kustomize', dir], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => (err ? rej(new Error(`kubectl kustomize ${dir}: ${stderr || err.message}`)) : res(stdout))),
  );
}

function kubectlAvailable(): Promise<boolean> {
  return new Promise((r) => execFile('kubectl', ['version', '--client'], (err) => r(!err)));
}

function parseDocs(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`YAML: ${d.errors[0].message}`);
      return d.toJSON() as Obj | null;
    })
    .filter((d): d is Obj => d !== null);
}

function findKustomizations(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...findKustomizations(p));
    else if (e === 'kustomization.yaml') out.push(dir);
  }
  return out.sort();
}

// ---- the validator ------------------------------------------------------------------------------------

const API_VERSIONS: Record<string, string> = {
  Namespace: 'v1',
  Service: 'v1',
  ServiceAccount: 'v1',
  ConfigMap: 'v1',
  Deployment: 'apps/v1',
  DaemonSet: 'apps/v1',
  StatefulSet: 'apps/v1',
  Role: 'rbac.authorization.k8s.io/v1',
  RoleBinding: 'rbac.authorization.k8s.io/v1',
  ClusterRole: 'rbac.authorization.k8s.io/v1',
  ClusterRoleBinding: 'rbac.authorization.k8s.io/v1',
  CustomResourceDefinition: 'apiextensions.k8s.io/v1',
  NetworkService: 'networkservicemesh.io/v1',
  NetworkServiceEndpoint: 'networkservicemesh.io/v1',
};
const WORKLOAD_KINDS = new Set(['Deployment', 'DaemonSet', 'StatefulSet']);
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition']);
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/;
const FIELD_PATHS = new Set(['metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName', 'spec.serviceAccountName', 'status.hostIP', 'status.podIP', 'status.podIPs']);

class Problems {
  readonly list: string[] = [];
  constructor(private readonly where: string) {}
  check(ok: unknown, path: string, msg: string): void {
    if (!ok) this.list.push(`${this.where}: ${path}: ${msg}`);
  }
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isStrList = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every(isStr);
const isPort = (v: unknown) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
const isPosInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 1;

function toBytesOrMilli(q: string, cpu: boolean): number {
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(q)!;
  const n = Number(m[1]);
  const mult: Record<string, number> = { '': cpu ? 1000 : 1, m: cpu ? 1 : 0.001, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return n * mult[m[2]];
}

function validateProbe(p: Problems, probe: unknown, path: string, kind: string, ports: Set<number>): void {
  if (probe === undefined) return;
  if (!isObj(probe)) return p.check(false, path, 'must be an object');
  const handlers = ['exec', 'grpc', 'httpGet', 'tcpSocket'].filter((h) => probe[h] !== undefined);
  p.check(handlers.length === 1, path, `exactly one handler of exec/grpc/httpGet/tcpSocket (got ${handlers.join(',') || 'none'})`);
  if (probe.exec !== undefined) p.check(isObj(probe.exec) && isStrList(probe.exec.command), `${path}.exec.command`, 'non-empty list of strings');
  if (probe.grpc !== undefined) {
    p.check(isObj(probe.grpc) && isPort(probe.grpc.port), `${path}.grpc.port`, 'integer port 1..65535');
    p.check(!isObj(probe.grpc) || ports.has(probe.grpc.port as number) || ports.size === 0, `${path}.grpc.port`, 'should be a declared containerPort');
  }
  for (const k of ['periodSeconds', 'timeoutSeconds', 'failureThreshold', 'successThreshold']) {
    if (probe[k] !== undefined) p.check(isPosInt(probe[k]), `${path}.${k}`, 'positive integer');
  }
  if (probe.initialDelaySeconds !== undefined) p.check(Number.isInteger(probe.initialDelaySeconds) && probe.initialDelaySeconds >= 0, `${path}.initialDelaySeconds`, 'integer >= 0');
  if (kind !== 'readinessProbe' && probe.successThreshold !== undefined) p.check(probe.successThreshold === 1, `${path}.successThreshold`, 'must be 1 for liveness/startup');
}

function validateContainer(p: Problems, c: unknown, path: string, volumes: Set<string>, hostNetwork: boolean): void {
  if (!isObj(c)) return p.check(false, path, 'must be an object');
  p.check(isStr(c.name) && DNS1123_LABEL.test(c.name), `${path}.name`, 'DNS-1123 label');
  p.check(isStr(c.image), `${path}.image`, 'required');
  if (c.imagePullPolicy !== undefined) p.check(['Always', 'IfNotPresent', 'Never'].includes(c.imagePullPolicy), `${path}.imagePullPolicy`, 'Always|IfNotPresent|Never');
  for (const k of ['args', 'command']) if (c[k] !== undefined) p.check(isStrList(c[k]), `${path}.${k}`, 'list of strings');
  for (const k of ['stdin', 'tty']) if (c[k] !== undefined) p.check(typeof c[k] === 'boolean', `${path}.${k}`, 'boolean');
  const defined = new Set<string>();
  for (const [i, e] of ((c.env as unknown[]) ?? []).entries()) {
    const ep = `${path}.env[${i}]`;
    if (!isObj(e)) {
      p.check(false, ep, 'must be an object');
      continue;
    }
    p.check(isStr(e.name) && ENV_NAME.test(e.name), `${ep}.name`, 'valid env var name');
    p.check(!defined.has(e.name), `${ep}.name`, `duplicate ${e.name}`);
    const hasValue = e.value !== undefined;
    const hasFrom = e.valueFrom !== undefined;
    p.check(hasValue !== hasFrom, ep, 'exactly one of value / valueFrom');
    if (hasValue) {
      p.check(typeof e.value === 'string', `${ep}.value`, `must be a string (got ${JSON.stringify(e.value)}; quote it)`);
      for (const m of String(e.value).matchAll(/\$\(([^)]+)\)/g)) p.check(defined.has(m[1]), `${ep}.value`, `$(${m[1]}) refers to no earlier env var`);
    }
    if (hasFrom) {
      const f = e.valueFrom as Obj;
      if (f.fieldRef !== undefined) p.check(FIELD_PATHS.has(f.fieldRef?.fieldPath), `${ep}.valueFrom.fieldRef.fieldPath`, 'supported downward-API field');
      else p.check(isObj(f.configMapKeyRef) || isObj(f.secretKeyRef) || isObj(f.resourceFieldRef), `${ep}.valueFrom`, 'fieldRef|configMapKeyRef|secretKeyRef|resourceFieldRef');
    }
    defined.add(e.name);
  }
  const ports = new Set<number>();
  for (const [i, port] of ((c.ports as unknown[]) ?? []).entries()) {
    const pp = `${path}.ports[${i}]`;
    if (!isObj(port)) continue;
    p.check(isPort(port.containerPort), `${pp}.containerPort`, 'integer port 1..65535');
    if (port.hostPort !== undefined) p.check(isPort(port.hostPort) && (!hostNetwork || port.hostPort === port.containerPort), `${pp}.hostPort`, 'port (= containerPort with hostNetwork)');
    if (port.protocol !== undefined) p.check(['TCP', 'UDP', 'SCTP'].includes(port.protocol), `${pp}.protocol`, 'TCP|UDP|SCTP');
    if (port.name !== undefined) p.check(isStr(port.name) && port.name.length <= 15 && /^[a-z0-9-]+$/.test(port.name), `${pp}.name`, 'IANA service name');
    ports.add(port.containerPort as number);
  }
  for (const k of ['startupProbe', 'readinessProbe', 'livenessProbe']) validateProbe(p, c[k], `${path}.${k}`, k, ports);
  for (const [i, m] of ((c.volumeMounts as unknown[]) ?? []).entries()) {
    if (!isObj(m)) continue;
    p.check(volumes.has(m.name), `${path}.volumeMounts[${i}].name`, `no volume named ${m.name}`);
    p.check(isStr(m.mountPath) && m.mountPath.startsWith('/'), `${path}.volumeMounts[${i}].mountPath`, 'absolute path');
  }
  if (c.resources !== undefined) {
    const r = c.resources as Obj;
    for (const kind of ['requests', 'limits']) {
      for (const [res, q] of Object.entries((r[kind] as Obj) ?? {})) {
        p.check(['cpu', 'memory'].includes(res), `${path}.resources.${kind}.${res}`, 'cpu|memory');
        p.check(typeof q === 'string' && QUANTITY.test(q), `${path}.resources.${kind}.${res}`, `quantity (got ${JSON.stringify(q)})`);
      }
    }
    for (const res of ['cpu', 'memory']) {
      const req = r.requests?.[res];
      const lim = r.limits?.[res];
      if (typeof req === 'string' && typeof lim === 'string' && QUANTITY.test(req) && QUANTITY.test(lim)) {
        p.check(toBytesOrMilli(req, res === 'cpu') <= toBytesOrMilli(lim, res === 'cpu'), `${path}.resources`, `${res} request ${req} exceeds limit ${lim}`);
      }
    }
  }
  if (c.securityContext !== undefined) {
    const s = c.securityContext as Obj;
    if (s.privileged !== undefined) p.check(typeof s.privileged === 'boolean', `${path}.securityContext.privileged`, 'boolean');
    if (s.capabilities?.add !== undefined) p.check(isStrList(s.capabilities.add), `${path}.securityContext.capabilities.add`, 'list of strings');
  }
}

function validatePodTemplate(p: Problems, spec: Obj, claimTemplates: string[] = []): void {
  const tpl = spec.template;
  if (!isObj(tpl)) return p.check(false, 'spec.template', 'required');
  p.check(isObj(spec.selector) && isObj(spec.selector.matchLabels), 'spec.selector.matchLabels', 'required');
  const labels = (tpl.metadata?.labels ?? {}) as Obj;
  for (const [k, v] of Object.entries((spec.selector?.matchLabels as Obj) ?? {})) p.check(labels[k] === v, 'spec.template.metadata.labels', `must include selector ${k}=${v}`);
  const pod = tpl.spec;
  if (!isObj(pod)) return p.check(false, 'spec.template.spec', 'required');
  for (const k of ['hostPID', 'hostNetwork']) if (pod[k] !== undefined) p.check(typeof pod[k] === 'boolean', `spec.template.spec.${k}`, 'boolean');
  if (pod.dnsPolicy !== undefined) p.check(['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'].includes(pod.dnsPolicy), 'spec.template.spec.dnsPolicy', 'known policy');
  if (pod.nodeName !== undefined) p.check(isStr(pod.nodeName), 'spec.template.spec.nodeName', 'string');
  const volumes = new Set<string>(claimTemplates);
  for (const [i, v] of ((pod.volumes as unknown[]) ?? []).entries()) {
    const vp = `spec.template.spec.volumes[${i}]`;
    if (!isObj(v)) continue;
    p.check(isStr(v.name) && !volumes.has(v.name), `${vp}.name`, 'unique name');
    volumes.add(v.name);
    const sources = Object.keys(v).filter((k) => k !== 'name');
    p.check(sources.length === 1, vp, 'exactly one volume source');
    if (v.hostPath !== undefined) {
      p.check(isStr(v.hostPath.path) && v.hostPath.path.startsWith('/'), `${vp}.hostPath.path`, 'absolute path');
      if (v.hostPath.type !== undefined) p.check(['', 'DirectoryOrCreate', 'Directory', 'FileOrCreate', 'File', 'Socket', 'CharDevice', 'BlockDevice'].includes(v.hostPath.type), `${vp}.hostPath.type`, 'known type');
    }
  }
  const containers = pod.containers as unknown[];
  p.check(Array.isArray(containers) && containers.length > 0, 'spec.template.spec.containers', 'at least one container');
  const names = new Set<string>();
  for (const [i, c] of (containers ?? []).entries()) {
    validateContainer(p, c, `spec.template.spec.containers[${i}]`, volumes, pod.hostNetwork === true);
    const n = (c as Obj)?.name as string;
    p.check(!names.has(n), `spec.template.spec.containers[${i}].name`, `duplicate ${n}`);
    names.add(n);
  }
}

/** A subset of OpenAPI v3 structural-schema validation (what our CRDs and CRs use). */
function validateSchema(p: Problems, schema: Obj, value: unknown, path: string): void {
  if (schema.type === 'object') {
    if (!isObj(value)) return p.check(false, path, 'must be an object');
    for (const req of (schema.required as string[]) ?? []) p.check(value[req] !== undefined, `${path}.${req}`, 'required');
    const props = (schema.properties as Obj) ?? {};
    for (const [k, v] of Object.entries(value)) {
      if (props[k]) validateSchema(p, props[k] as Obj, v, `${path}.${k}`);
      else if (path !== '' && !schema['x-kubernetes-preserve-unknown-fields'] && schema.additionalProperties === undefined) p.check(false, `${path}.${k}`, 'unknown field (pruned by the apiserver)');
    }
  } else if (schema.type === 'string') p.check(typeof value === 'string', path, 'must be a string');
  else if (schema.type === 'integer') p.check(Number.isInteger(value), path, 'must be an integer');
  else if (schema.type === 'boolean') p.check(typeof value === 'boolean', path, 'must be a boolean');
  else if (schema.type === 'array') {
    if (!Array.isArray(value)) return p.check(false, path, 'must be an array');
    value.forEach((v, i) => validateSchema(p, (schema.items as Obj) ?? {}, v, `${path}[${i}]`));
  }
}

function crdSchemas(): Map<string, Obj> {
  const out = new Map<string, Obj>();
  for (const f of ['crd-ns.yaml', 'crd-nse.yaml']) {
    for (const crd of parseDocs(readFileSync(join(DEPLOY, 'apps/registry-k8s', f), 'utf8'))) {
      const v = (crd.spec.versions as Obj[]).find((x) => x.storage);
      out.set(`${crd.spec.group}/${v?.name}/${crd.spec.names.kind}`, v?.schema?.openAPIV3Schema as Obj);
    }
  }
  return out;
}

/** Validates one rendered object; returns the problems found. */
function validateObject(obj: Obj, where: string, schemas: Map<string, Obj>): string[] {
  const p = new Problems(`${where} ${obj?.kind}/${obj?.metadata?.name}`);
  const kind = obj.kind as string;
  const want = API_VERSIONS[kind];
  p.check(want !== undefined, 'kind', `unknown kind ${kind}`);
  if (want === undefined) return p.list;
  p.check(obj.apiVersion === want, 'apiVersion', `${kind} must be ${want} (got ${obj.apiVersion})`);
  const md = obj.metadata as Obj;
  p.check(isObj(md) && isStr(md.name), 'metadata.name', 'required');
  const nameRe = kind === 'Namespace' || kind === 'Service' ? DNS1123_LABEL : DNS1123_SUBDOMAIN;
  p.check(isStr(md?.name) && md.name.length <= 253 && nameRe.test(md.name), 'metadata.name', 'valid name');
  if (CLUSTER_SCOPED.has(kind)) p.check(md?.namespace === undefined, 'metadata.namespace', 'cluster-scoped kind must not have a namespace');
  for (const [k, v] of Object.entries((md?.labels as Obj) ?? {})) p.check(typeof v === 'string', `metadata.labels.${k}`, 'string value');
  const topLevel = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'data', 'binaryData', 'immutable', 'rules', 'subjects', 'roleRef', 'aggregationRule', 'secrets', 'automountServiceAccountToken', 'imagePullSecrets']);
  for (const k of Object.keys(obj)) p.check(topLevel.has(k), k, 'unknown top-level field');

  switch (kind) {
    case 'Deployment':
    case 'DaemonSet':
      validatePodTemplate(p, obj.spec ?? {});
      break;
    case 'StatefulSet': {
      const claims = ((obj.spec?.volumeClaimTemplates as unknown[]) ?? []).map((c, i) => {
        const ok = isObj(c) && isStr(c.metadata?.name) && isStrList(c.spec?.accessModes) && isStr(c.spec?.resources?.requests?.storage) && QUANTITY.test(c.spec.resources.requests.storage);
        p.check(ok, `spec.volumeClaimTemplates[${i}]`, 'metadata.name, spec.accessModes and spec.resources.requests.storage (a quantity)');
        return (c as Obj)?.metadata?.name as string;
      });
      p.check(isStr(obj.spec?.serviceName), 'spec.serviceName', 'required for a StatefulSet');
      if (obj.spec?.replicas !== undefined) p.check(Number.isInteger(obj.spec.replicas) && obj.spec.replicas >= 0, 'spec.replicas', 'integer >= 0');
      validatePodTemplate(p, obj.spec ?? {}, claims);
      break;
    }
    case 'Service': {
      const ports = obj.spec?.ports as unknown[];
      p.check(Array.isArray(ports) && ports.length > 0, 'spec.ports', 'at least one port');
      for (const [i, port] of (ports ?? []).entries()) {
        p.check(isObj(port) && isPort(port.port), `spec.ports[${i}].port`, 'integer port');
        if (isObj(port) && port.targetPort !== undefined) p.check(isPort(port.targetPort) || isStr(port.targetPort), `spec.ports[${i}].targetPort`, 'port or name');
      }
      p.check(isObj(obj.spec?.selector), 'spec.selector', 'required');
      break;
    }
    case 'ClusterRole':
    case 'Role':
      for (const [i, r] of ((obj.rules as unknown[]) ?? []).entries()) {
        p.check(isObj(r) && Array.isArray(r.apiGroups) && isStrList(r.resources) && isStrList(r.verbs), `rules[${i}]`, 'apiGroups, resources and verbs');
      }
      p.check(Array.isArray(obj.rules) && obj.rules.length > 0, 'rules', 'at least one rule');
      break;
    case 'ClusterRoleBinding':
    case 'RoleBinding':
      p.check(obj.roleRef?.apiGroup === 'rbac.authorization.k8s.io' && ['ClusterRole', 'Role'].includes(obj.roleRef?.kind) && isStr(obj.roleRef?.name), 'roleRef', 'apiGroup rbac.authorization.k8s.io, kind, name');
      for (const [i, s] of ((obj.subjects as unknown[]) ?? []).entries()) {
        p.check(isObj(s) && isStr(s.kind) && isStr(s.name) && (s.kind !== 'ServiceAccount' || isStr(s.namespace)), `subjects[${i}]`, 'kind, name (and namespace for ServiceAccount)');
      }
      break;
    case 'CustomResourceDefinition': {
      const s = obj.spec as Obj;
      p.check(isStr(s?.group) && isStr(s?.names?.kind) && isStr(s?.names?.plural), 'spec', 'group, names.kind, names.plural');
      p.check(md.name === `${s?.names?.plural}.${s?.group}`, 'metadata.name', 'must be <plural>.<group>');
      p.check(['Namespaced', 'Cluster'].includes(s?.scope), 'spec.scope', 'Namespaced|Cluster');
      const versions = (s?.versions as Obj[]) ?? [];
      p.check(versions.filter((v) => v.storage === true).length === 1, 'spec.versions', 'exactly one storage version');
      for (const v of versions) p.check(v.schema?.openAPIV3Schema?.type === 'object', `spec.versions[${v.name}].schema.openAPIV3Schema`, 'structural schema of type object');
      break;
    }
    case 'ConfigMap':
      for (const [k, v] of Object.entries((obj.data as Obj) ?? {})) p.check(typeof v === 'string', `data.${k}`, 'string value');
      break;
    case 'NetworkService':
    case 'NetworkServiceEndpoint': {
      const schema = schemas.get(`${obj.apiVersion}/${kind}`);
      p.check(schema !== undefined, 'kind', 'no CRD for this kind');
      if (schema) validateSchema(p, schema, obj, '');
      try {
        if (kind === 'NetworkService') nsFromResource(obj);
        else nseFromResource(obj);
      } catch (err) {
        p.check(false, 'spec', (err as Error).message);
      }
      break;
    }
  }
  return p.list;
}

/** Cross-object checks within one render. */
function validateRender(objs: Obj[], where: string): string[] {
  const problems: string[] = [];
  const sas = new Set(objs.filter((o) => o.kind === 'ServiceAccount').map((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`));
  const workloads = objs.filter((o) => WORKLOAD_KINDS.has(o.kind));
  for (const w of workloads) {
    const sa = w.spec?.template?.spec?.serviceAccountName as string | undefined;
    if (sa) if (!sas.has(`${w.metadata.namespace ?? ''}/${sa}`)) problems.push(`${where} ${w.kind}/${w.metadata.name}: serviceAccountName ${sa} not in this render`);
  }
  for (const b of objs.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')) {
    for (const s of (b.subjects as Obj[]) ?? []) {
      // A ServiceAccount without a namespace gets one at deploy time (kustomize `namespace:`).
      if (s.kind === 'ServiceAccount' && sas.size > 0 && !sas.has(`${s.namespace}/${s.name}`) && !sas.has(`/${s.name}`)) problems.push(`${where} ClusterRoleBinding/${b.metadata.name}: subject ${s.namespace}/${s.name} not in this render`);
    }
    const role = objs.find((o) => o.kind === b.roleRef?.kind && o.metadata.name === b.roleRef?.name);
    if (!role) problems.push(`${where} ${b.kind}/${b.metadata.name}: roleRef ${b.roleRef?.kind}/${b.roleRef?.name} not in this render`);
    else if (role.kind === 'Role' && role.metadata.namespace !== b.metadata.namespace) problems.push(`${where} RoleBinding/${b.metadata.name}: Role ${role.metadata.name} is in another namespace`);
  }
  for (const s of objs.filter((o) => o.kind === 'Service')) {
    const sel = (s.spec?.selector as Obj) ?? {};
    const hit = workloads.some((w) => Object.entries(sel).every(([k, v]) => w.spec?.template?.metadata?.labels?.[k] === v));
    if (!hit) problems.push(`${where} Service/${s.metadata.name}: selector ${JSON.stringify(sel)} matches no workload in this render`);
  }
  for (const st of objs.filter((o) => o.kind === 'StatefulSet')) {
    if (!objs.some((o) => o.kind === 'Service' && o.metadata.name === st.spec?.serviceName)) problems.push(`${where} StatefulSet/${st.metadata.name}: serviceName ${st.spec?.serviceName} is no Service in this render`);
  }
  const seen = new Set<string>();
  for (const o of objs) {
    const k = `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
    if (seen.has(k)) problems.push(`${where}: duplicate ${k}`);
    seen.add(k);
  }
  return problems;
}

function validateAll(objs: Obj[], where: string): void {
  const schemas = crdSchemas();
  const problems = [...objs.flatMap((o) => validateObject(o, where, schemas)), ...validateRender(objs, where)];
  assert.deepEqual(problems, [], problems.join('\n'));
}

// ---- helpers for assertions ----------------------------------------------------------------------------

function find(objs: Obj[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} rendered`);
  return o;
}

function container(w: Obj, name: string): Obj {
  const c = (w.spec.template.spec.containers as Obj[]).find((x) => x.name === name);
  assert.ok(c, `container ${name} in ${w.kind}/${w.metadata.name}`);
  return c;
}

function envOf(c: Obj): Record<string, unknown> {
  return Object.fromEntries((c.env as Obj[]).map((e) => [e.name, e.value ?? e.valueFrom]));
}

async function needKubectl(t: TestContext): Promise<boolean> {
  if (await kubectlAvailable()) return true;
  t.skip('kubectl (with kustomize) is not installed');
  return false;
}

// ---- tests --------------------------------------------------------------------------------------------

describe('deployments/ kustomizations render offline and validate', () => {
  const dirs = findKustomizations(DEPLOY);

  it('finds the apps and examples laid out like upstream deployments-k8s', () => {
    const rel = dirs.map((d) => relative(DEPLOY, d));
    for (const want of ['apps/spire', 'apps/nsmgr', 'apps/forwarder-kernel', 'apps/registry-memory', 'apps/registry-k8s', 'apps/nsc-kernel', 'apps/nse-kernel', 'examples/basic', 'examples/memory']) {
      assert.ok(rel.includes(want), `${want} has a kustomization.yaml`);
    }
  });

  for (const dir of dirs) {
    const rel = relative(DEPLOY, dir);
    it(`${rel} renders with kubectl kustomize and every object validates`, async (t) => {
      if (!(await needKubectl(t))) return;
      const objs = parseDocs(await kubectlKustomize(dir));
      assert.ok(objs.length > 0);
      validateAll(objs, rel);
      for (const w of objs.filter((o) => WORKLOAD_KINDS.has(o.kind))) {
        for (const c of w.spec.template.spec.containers as Obj[]) {
          // SPIRE's own images, at the version the end-to-end tests run (test/spire.ts); nsm-ts for the rest.
          const image = c.name.startsWith('spire-') ? `ghcr.io/spiffe/${c.name}:${SPIRE_VERSION.slice(1)}` : 'nsm-ts:0.1.0';
          assert.equal(c.image, image, `${w.metadata.name}/${c.name} image`);
          assert.equal(c.imagePullPolicy, 'IfNotPresent');
          assert.ok(c.resources?.requests?.memory && c.resources?.limits?.memory, `${w.metadata.name}/${c.name} states memory requests and limits`);
        }
      }
    });
  }

  it('apps carry the settings the mesh depends on', async (t) => {
    if (!(await needKubectl(t))) return;
    const basic = parseDocs(await kubectlKustomize(join(DEPLOY, 'examples/basic')));
    assert.ok(basic.every((o) => o.kind === 'Namespace' || o.kind === 'CustomResourceDefinition' || o.kind.startsWith('Cluster') || o.metadata.namespace === 'nsm-system'));
    find(basic, 'Namespace', 'nsm-system');

    const nsmgr = find(basic, 'DaemonSet', 'nsmgr');
    const nc = container(nsmgr, 'nsmgr');
    const ne = envOf(nc);
    assert.equal(ne.NSM_LISTEN_ON, 'unix:///var/lib/networkservicemesh/nsm.io.sock,tcp://$(POD_IP):5001');
    assert.equal(ne.NSM_REGISTRY_URL, 'registry:5002');
    assert.deepEqual(ne.NODE_NAME, { fieldRef: { fieldPath: 'spec.nodeName' } });
    assert.deepEqual(nc.ports[0], { name: 'grpc', containerPort: 5001, hostPort: 5001, protocol: 'TCP' });
    assert.deepEqual(nsmgr.spec.template.spec.volumes[0].hostPath, { path: '/var/lib/networkservicemesh', type: 'DirectoryOrCreate' });
    assert.deepEqual(nc.readinessProbe.grpc, { port: 5001 });
    assert.equal(nsmgr.spec.template.spec.hostPID, true, 'nsmgr finds the netns of its callers among the node\'s processes');
    assert.deepEqual(nc.securityContext.capabilities.add, ['SYS_PTRACE']);

    const fwd = find(basic, 'DaemonSet', 'forwarder-kernel');
    assert.equal(fwd.spec.template.spec.hostPID, true);
    assert.equal(fwd.spec.template.spec.hostNetwork, true);
    const fc = container(fwd, 'forwarder-kernel');
    assert.equal(fc.securityContext.privileged, true);
    assert.equal(envOf(fc).NSM_CONNECT_TO, 'unix:///var/lib/networkservicemesh/nsm.io.sock');
    assert.equal(envOf(fc).NSM_LISTEN_ON, 'unix:///var/lib/networkservicemesh/forwarder.sock');
    assert.deepEqual(envOf(fc).NSM_TUNNEL_IP, { fieldRef: { fieldPath: 'status.podIP' } }, 'tunnels end at the node address (host network), as upstream');
    assert.deepEqual(fc.livenessProbe.exec.command, ['nsm', 'health', '--url', 'unix:///var/lib/networkservicemesh/forwarder.sock']);

    const reg = find(basic, 'Deployment', 'registry-k8s');
    assert.equal(reg.spec.template.spec.serviceAccountName, 'registry-k8s-sa');
    assert.deepEqual(envOf(container(reg, 'registry')).NSM_NAMESPACE, { fieldRef: { fieldPath: 'metadata.namespace' } });
    assert.equal(find(basic, 'Service', 'registry').spec.ports[0].port, 5002);
    const role = find(basic, 'ClusterRole', 'registry-k8s-role');
    assert.deepEqual(role.rules[0].apiGroups, ['networkservicemesh.io']);
    assert.deepEqual(role.rules[0].resources, ['networkservices', 'networkserviceendpoints']);
    assert.deepEqual(find(basic, 'ClusterRoleBinding', 'registry-k8s-binding').subjects[0], { kind: 'ServiceAccount', name: 'registry-k8s-sa', namespace: 'nsm-system' });
    const crdNs = find(basic, 'CustomResourceDefinition', 'networkservices.networkservicemesh.io');
    assert.deepEqual(crdNs.spec.names, { kind: 'NetworkService', listKind: 'NetworkServiceList', plural: 'networkservices', singular: 'networkservice', shortNames: ['netsvc', 'netsvcs'] });
    const crdNse = find(basic, 'CustomResourceDefinition', 'networkserviceendpoints.networkservicemesh.io');
    assert.deepEqual(crdNse.spec.names.shortNames, ['nse', 'nses']);
    assert.equal(crdNse.spec.versions[0].schema.openAPIV3Schema.properties.spec['x-kubernetes-preserve-unknown-fields'], true);

    const memory = parseDocs(await kubectlKustomize(join(DEPLOY, 'examples/memory')));
    assert.equal(container(find(memory, 'Deployment', 'registry'), 'registry').args[0], 'registry');
    assert.ok(!memory.some((o) => o.kind === 'CustomResourceDefinition'));

    const nsc = find(parseDocs(await kubectlKustomize(join(DEPLOY, 'apps/nsc-kernel'))), 'Deployment', 'nsc-kernel');
    assert.equal(nsc.spec.template.metadata.labels.app, 'nsc-kernel');
    const nscC = container(nsc, 'nsc');
    assert.deepEqual(envOf(nscC).NSM_NAME, { fieldRef: { fieldPath: 'metadata.name' } });
    assert.equal(nscC.volumeMounts[0].readOnly, true);

    const nse = find(parseDocs(await kubectlKustomize(join(DEPLOY, 'apps/nse-kernel'))), 'Deployment', 'nse-kernel');
    const nseE = envOf(container(nse, 'nse'));
    assert.equal(nseE.NSM_NAME, '$(POD_NAME)');
    assert.equal(nseE.NSM_CONNECT_TO, 'unix:///var/lib/networkservicemesh/nsm.io.sock');
  });

  it('every nsm-ts component mounts the SPIRE agent socket and sets SPIFFE_ENDPOINT_SOCKET, as upstream', async (t) => {
    if (!(await needKubectl(t))) return;
    const apps = dirs.map((d) => relative(DEPLOY, d)).filter((r) => r.startsWith('apps/') && r !== 'apps/spire');
    assert.ok(apps.length >= 6, apps.join(' '));
    for (const app of apps) {
      const workloads = parseDocs(await kubectlKustomize(join(DEPLOY, app))).filter((o) => WORKLOAD_KINDS.has(o.kind));
      assert.ok(workloads.length > 0, `${app} has a workload`);
      for (const w of workloads) {
        const pod = w.spec.template.spec as Obj;
        const where = `${app} ${w.kind}/${w.metadata.name}`;
        assert.equal(w.spec.template.metadata.labels['spiffe.io/spiffe-id'], 'true', `${where}: label spiffe.io/spiffe-id`);
        const vol = (pod.volumes as Obj[]).find((v) => v.name === 'spire-agent-socket');
        assert.deepEqual(vol?.hostPath, { path: '/run/spire/sockets', type: 'DirectoryOrCreate' }, `${where}: volume spire-agent-socket`);
        for (const c of (pod.containers as Obj[]).filter((x) => x.image === 'nsm-ts:0.1.0')) {
          assert.equal(envOf(c).SPIFFE_ENDPOINT_SOCKET, SPIFFE_ENDPOINT_SOCKET, `${where}/${c.name}: SPIFFE_ENDPOINT_SOCKET`);
          const m = (c.volumeMounts as Obj[]).find((x) => x.name === 'spire-agent-socket');
          assert.deepEqual(m, { name: 'spire-agent-socket', mountPath: '/run/spire/sockets', readOnly: true }, `${where}/${c.name}: mount`);
        }
      }
    }
  });

  it('apps/spire: server StatefulSet and agent DaemonSet agree on trust domain, cluster, service, bundle and socket', async (t) => {
    if (!(await needKubectl(t))) return;
    const objs = parseDocs(await kubectlKustomize(join(DEPLOY, 'apps/spire')));
    assert.ok(objs.every((o) => CLUSTER_SCOPED.has(o.kind) || o.metadata.namespace === 'spire'), 'namespaced objects in spire');
    find(objs, 'Namespace', 'spire');
    const serverConf = find(objs, 'ConfigMap', 'spire-server').data['server.conf'] as string;
    const agentConf = find(objs, 'ConfigMap', 'spire-agent').data['agent.conf'] as string;
    const hcl = (conf: string, key: string) => new RegExp(`^\\s*${key} = "([^"]*)"`, 'm').exec(conf)?.[1];

    assert.equal(hcl(serverConf, 'trust_domain'), 'k8s.nsm');
    assert.equal(hcl(agentConf, 'trust_domain'), 'k8s.nsm');
    assert.match(serverConf, /database_type = "sqlite3"/);
    assert.match(serverConf, /NodeAttestor "k8s_psat"/);
    assert.match(agentConf, /NodeAttestor "k8s_psat"/);
    assert.match(agentConf, /WorkloadAttestor "k8s"/);
    assert.match(agentConf, /WorkloadAttestor "unix"/);
    // k8s_psat: the agent names the cluster the server knows, and the server allows the agent's service account.
    assert.match(serverConf, new RegExp(`"${hcl(agentConf, 'cluster')}" = \\{\\s*service_account_allow_list = \\["spire:spire-agent"\\]`));
    find(objs, 'ServiceAccount', 'spire-agent');

    const server = find(objs, 'StatefulSet', 'spire-server');
    assert.equal(server.spec.replicas, 1);
    assert.equal(server.spec.template.spec.serviceAccountName, 'spire-server');
    assert.equal(server.spec.volumeClaimTemplates[0].metadata.name, 'spire-data');
    const sc = container(server, 'spire-server');
    assert.deepEqual(sc.args, ['-config', '/run/spire/config/server.conf']);
    assert.equal((sc.volumeMounts as Obj[]).find((m) => m.name === 'spire-data')?.mountPath, hcl(serverConf, 'data_dir'));
    const svc = find(objs, 'Service', 'spire-server');
    assert.equal(hcl(agentConf, 'server_address'), svc.metadata.name);
    assert.equal(Number(hcl(agentConf, 'server_port')), svc.spec.ports[0].port);
    assert.equal(Number(hcl(serverConf, 'bind_port')), sc.ports[0].containerPort);

    const agent = find(objs, 'DaemonSet', 'spire-agent');
    const pod = agent.spec.template.spec as Obj;
    assert.equal(pod.hostPID, true, 'the agent reads its callers in /proc');
    assert.equal(pod.serviceAccountName, 'spire-agent');
    const ac = container(agent, 'spire-agent');
    assert.equal(`unix://${hcl(agentConf, 'socket_path')}`, SPIFFE_ENDPOINT_SOCKET);
    const sockVol = (pod.volumes as Obj[]).find((v) => v.name === 'spire-agent-socket');
    assert.equal(sockVol?.hostPath?.path, '/run/spire/sockets');
    assert.equal((ac.volumeMounts as Obj[]).find((m) => m.name === 'spire-agent-socket')?.mountPath, '/run/spire/sockets');
    const token = (pod.volumes as Obj[]).find((v) => v.name === 'spire-token')?.projected?.sources?.[0]?.serviceAccountToken;
    assert.deepEqual(token, { path: 'spire-agent', expirationSeconds: 7200, audience: 'spire-server' }, 'the k8s_psat token (default token_path /var/run/secrets/tokens/spire-agent)');
    assert.equal((ac.volumeMounts as Obj[]).find((m) => m.name === 'spire-token')?.mountPath, '/var/run/secrets/tokens');
    // The bundle the server's notifier writes is the one the agent bootstraps from.
    assert.match(serverConf, /Notifier "k8sbundle" \{\s*plugin_data \{\s*namespace = "spire"\s*config_map = "spire-bundle"/);
    find(objs, 'ConfigMap', 'spire-bundle');
    assert.equal((pod.volumes as Obj[]).find((v) => v.name === 'spire-bundle')?.configMap?.name, 'spire-bundle');
    assert.equal(hcl(agentConf, 'trust_bundle_path'), `${(ac.volumeMounts as Obj[]).find((m) => m.name === 'spire-bundle')?.mountPath}/bundle.crt`);
    assert.deepEqual(envOf(ac).MY_NODE_NAME, { fieldRef: { fieldPath: 'spec.nodeName' } });
    assert.match(agentConf, /node_name_env = "MY_NODE_NAME"/);

    const binding = find(objs, 'RoleBinding', 'spire-server-role-binding');
    assert.deepEqual(binding.subjects[0], { kind: 'ServiceAccount', name: 'spire-server', namespace: 'spire' });
    assert.deepEqual(find(objs, 'Role', 'spire-server-role').rules[0].resourceNames, ['spire-bundle']);
    assert.ok((find(objs, 'ClusterRole', 'spire-server-cluster-role').rules as Obj[]).some((r) => r.resources.includes('tokenreviews') && r.verbs.includes('create')));
  });

  it('the dataplane-interrupt README kustomization (its heredocs) renders and validates', async (t) => {
    if (!(await needKubectl(t))) return;
    const readme = readFileSync(join(EXAMPLE, 'README.md'), 'utf8');
    const heredocs = [...readme.matchAll(/cat > (\S+) <<EOF\n([\s\S]*?)\nEOF\n/g)].map((m) => [m[1], m[2]] as const);
    assert.deepEqual(heredocs.map(([f]) => f), ['kustomization.yaml', 'patch-nsc.yaml', 'patch-nse.yaml']);
    const dir = mkdtempSync(join(tmpdir(), 'nsmt-kustomize-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    for (const [file, text] of heredocs) {
      // As the shell would: ${NODE} expanded; the relative bases resolved from the example directory.
      const body = text.replaceAll('${NODE}', 'worker-1').replace(/^- (\.\.\/\.\.\/\.\.\/apps\/\S+)$/gm, (_, p: string) => `- ${relative(dir, resolve(EXAMPLE, p))}`);
      writeFileSync(join(dir, file), `${body}\n`);
    }
    copyFileSync(join(EXAMPLE, 'netsvc.yaml'), join(dir, 'netsvc.yaml'));
    const objs = parseDocs(await kubectlKustomize(dir));
    validateAll(objs, 'examples/heal/dataplane-interrupt (README)');
    assert.ok(objs.every((o) => o.metadata.namespace === 'ns-dataplane-interrupt'));

    const netsvc = find(objs, 'NetworkService', 'dataplane-interrupt');
    assert.equal(nsFromResource(netsvc).payload, 'ETHERNET');

    const nsc = find(objs, 'Deployment', 'nsc-kernel');
    assert.equal(nsc.spec.template.spec.nodeName, 'worker-1');
    assert.equal(envOf(container(nsc, 'nsc')).NSM_NETWORK_SERVICES, 'kernel://dataplane-interrupt/nsm-1');
    assert.deepEqual(envOf(container(nsc, 'nsc')).NSM_NAME, { fieldRef: { fieldPath: 'metadata.name' } });
    const alpine = container(nsc, 'alpine');
    assert.deepEqual(alpine.securityContext.capabilities.add, ['NET_ADMIN']);
    assert.equal(alpine.image, 'alpine:3.15.0');

    const nse = find(objs, 'Deployment', 'nse-kernel');
    assert.equal(nse.spec.template.spec.nodeName, 'worker-1');
    const e = envOf(container(nse, 'nse'));
    assert.equal(e.NSM_CIDR_PREFIX, '172.16.1.100/31');
    assert.equal(e.NSM_SERVICE_NAMES, 'dataplane-interrupt');
    assert.equal(e.NSM_REGISTER_SERVICE, 'false');
    assert.equal(e.NSM_CONNECT_TO, 'unix:///var/lib/networkservicemesh/nsm.io.sock');
  });

  it('the README keeps the seed example steps (pinger script, interruption, checks)', () => {
    const readme = readFileSync(join(EXAMPLE, 'README.md'), 'utf8');
    for (const step of [
      'kubectl create ns ns-dataplane-interrupt',
      'kubectl apply -k .',
      'kubectl wait --for=condition=ready --timeout=1m pod -l app=nsc-kernel -n ns-dataplane-interrupt',
      'kubectl exec ${NSC} -n ns-dataplane-interrupt -c nsc -- ping -c 4 172.16.1.100',
      'kubectl exec ${NSE} -n ns-dataplane-interrupt -- ping -c 4 172.16.1.101',
      'ping -i 0.2 172.16.1.100 | while :; do',
      'kubectl exec ${NSC} -n ns-dataplane-interrupt -c alpine -- ip link set nsm-1 down',
      'timeout 10 sh -c "while ! [ -f \\"$1\\" ];do sleep 1; done"',
      'kubectl delete ns ns-dataplane-interrupt',
    ]) {
      assert.ok(readme.includes(step), `README contains: ${step}`);
    }
  });

  it('the validator catches the mistakes it is meant to catch', () => {
    const schemas = crdSchemas();
    const dep = (patch: (c: Obj) => void): Obj => {
      const c: Obj = { name: 'c', image: 'nsm-ts:0.1.0', env: [{ name: 'A', value: 'x' }], ports: [{ containerPort: 5001 }] };
      patch(c);
      return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { selector: { matchLabels: { app: 'd' } }, template: { metadata: { labels: { app: 'd' } }, spec: { containers: [c] } } } };
    };
    assert.deepEqual(validateObject(dep(() => undefined), 't', schemas), []);
    const sts = (patch: (spec: Obj) => void): Obj => {
      const d = dep((c) => (c.volumeMounts = [{ name: 'data', mountPath: '/data' }]));
      const spec: Obj = { ...d.spec, serviceName: 's', volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }] };
      patch(spec);
      return { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's' }, spec };
    };
    assert.deepEqual(validateObject(sts(() => undefined), 't', schemas), [], 'a claim template is a volume a container may mount');
    const bad: Array<[Obj, RegExp]> = [
      [dep((c) => (c.env[0].value = 5)), /must be a string/],
      [dep((c) => c.env.push({ name: 'B', value: '$(LATER)' })), /refers to no earlier env var/],
      [dep((c) => (c.livenessProbe = { grpc: { port: 5001 }, exec: { command: ['x'] } })), /exactly one handler/],
      [dep((c) => (c.resources = { requests: { memory: '200Mi' }, limits: { memory: '100Mi' } })), /exceeds limit/],
      [dep((c) => (c.volumeMounts = [{ name: 'nope', mountPath: '/x' }])), /no volume named nope/],
      [{ apiVersion: 'v1', kind: 'Deployment', metadata: { name: 'd' } }, /must be apps\/v1/],
      [sts((spec) => delete spec.serviceName), /serviceName.*required/],
      [sts((spec) => (spec.volumeClaimTemplates[0].spec.resources.requests.storage = 'lots')), /volumeClaimTemplates\[0\]/],
      [sts((spec) => (spec.volumeClaimTemplates = [])), /no volume named data/],
      [{ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'b' }, roleRef: { apiGroup: 'x', kind: 'Role', name: 'r' } }, /roleRef/],
      [{ apiVersion: 'networkservicemesh.io/v1', kind: 'NetworkService', metadata: { name: 'n' }, spec: { payload: 1 } }, /spec\.payload/],
      [{ apiVersion: 'networkservicemesh.io/v1', kind: 'NetworkService', metadata: { name: 'n' }, extra: 1 }, /unknown top-level field/],
    ];
    for (const [obj, re] of bad) {
      const problems = validateObject(obj, 't', schemas);
      assert.ok(problems.some((x) => re.test(x)), `${re} in ${JSON.stringify(problems)}`);
    }
  });
});
