import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection } from '../../api/gen/connection.js';
import { Connection as ConnectionFns } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { type NetworkServiceElement, networkServiceChain, passThrough } from '../../core/chain.js';
import { type CallContext, newContext } from '../../core/context.js';
import { CANDIDATES, discoverServer, isSubset, processLabelTemplate } from './index.js';
import { arrayRegistries, ns, nse } from './testing.js';

const NOW = Date.parse('2025-01-01T00:00:00Z');

function request(service: string, labels: Record<string, string> = {}, nseName = ''): NetworkServiceRequest {
  return { connection: ConnectionFns.fromPartial({ id: 'c1', networkService: service, labels, networkServiceEndpointName: nseName }), mechanismPreferences: [] };
}

/** Captures the candidates discover left in the state. */
function capture(out: { names?: string[]; closed?: number }): NetworkServiceElement {
  return passThrough('capture', {
    request: async (r, ctx, next) => {
      out.names = ctx.state.get(CANDIDATES)?.map((n) => n.name);
      return next.request(r, ctx);
    },
    close: async (c, ctx, next) => {
      out.names = ctx.state.get(CANDIDATES)?.map((n) => n.name);
      out.closed = (out.closed ?? 0) + 1;
      return next.close(c, ctx);
    },
  });
}

async function candidatesFor(regs: ReturnType<typeof arrayRegistries>, r: NetworkServiceRequest, ctx: CallContext = newContext()): Promise<{ names?: string[]; conn: Connection }> {
  const out: { names?: string[] } = {};
  const conn = await networkServiceChain('t', [discoverServer({ ...regs, clock: { now: () => NOW, setTimeout: () => ({ cancel() {} }) } }), capture(out)]).request(r, ctx);
  return { names: out.names, conn };
}

describe('discover: label templates', () => {
  it('substitutes {{.label}} references', () => {
    assert.equal(processLabelTemplate('{{.nodeName}}', { nodeName: 'n1' }), 'n1');
    assert.equal(processLabelTemplate('x-{{ .podName }}-{{.nodeName}}', { nodeName: 'n1', podName: 'p' }), 'x-p-n1');
    assert.equal(processLabelTemplate('{{.missing}}', {}), '<no value>');
    assert.equal(processLabelTemplate('{{if .x}}y{{end}}', { x: '1' }), '{{if .x}}y{{end}}');
    assert.equal(isSubset({ a: '1', b: '2' }, { a: '1' }, {}), true);
    assert.equal(isSubset({ a: '1' }, { a: '1', b: '' }, {}), false);
    assert.equal(isSubset({ node: 'n1' }, { node: '{{.nodeName}}' }, { nodeName: 'n1' }), true);
  });
});

describe('discover server', () => {
  it('no matches: all live NSEs of the service, payload from the NS', async () => {
    const regs = arrayRegistries(
      [ns({ name: 'svc', payload: 'ETHERNET' }), ns({ name: 'other', payload: 'IP' })],
      [
        nse('nse-1', ['svc'], 'unix:///1'),
        nse('nse-2', ['other'], 'unix:///2'),
        nse('nse-3', ['svc', 'other'], 'unix:///3', {}, new Date(NOW + 60_000)),
        nse('expired', ['svc'], 'unix:///4', {}, new Date(NOW - 1)),
      ],
    );
    const { names, conn } = await candidatesFor(regs, request('svc'));
    assert.deepEqual(names, ['nse-1', 'nse-3']);
    assert.equal(conn.payload, 'ETHERNET');
  });

  it('NS missing → NotFoundError naming it; no NSE → NotFoundError', async () => {
    const regs = arrayRegistries([ns({ name: 'svc' })], [nse('x', ['other'], 'unix:///x')]);
    await assert.rejects(candidatesFor(regs, request('nope')), (e: Error) => e.name === 'NotFoundError' && e.message.includes('"nope"'));
    await assert.rejects(candidatesFor(regs, request('svc')), { name: 'NotFoundError' });
  });

  it('applies matches: source selector, destination selector with templates, fallthrough', async () => {
    const service = ns({
      name: 'svc',
      matches: [
        { sourceSelector: { app: 'firewall' }, routes: [{ destinationSelector: { role: 'fw' } }] },
        { sourceSelector: { app: 'local' }, routes: [{ destinationSelector: { node: '{{.nodeName}}' } }], fallthrough: true },
        { sourceSelector: {}, routes: [{ destinationSelector: { role: 'default' } }] },
      ],
    });
    const regs = arrayRegistries([service], [
      nse('fw', ['svc'], 'u1', { svc: { role: 'fw' } }),
      nse('on-n1', ['svc'], 'u2', { svc: { node: 'n1', role: 'default' } }),
      nse('on-n2', ['svc'], 'u3', { svc: { node: 'n2', role: 'default' } }),
    ]);
    assert.deepEqual((await candidatesFor(regs, request('svc', { app: 'firewall' }))).names, ['fw']);
    assert.deepEqual((await candidatesFor(regs, request('svc', { app: 'local', nodeName: 'n2' }))).names, ['on-n2']);
    // fallthrough: nothing on n3, so the default match applies
    assert.deepEqual((await candidatesFor(regs, request('svc', { app: 'local', nodeName: 'n3' }))).names, ['on-n1', 'on-n2']);
    assert.deepEqual((await candidatesFor(regs, request('svc', {}))).names, ['on-n1', 'on-n2']);
  });

  it('a match without fallthrough that selects nothing → NotFoundError', async () => {
    const regs = arrayRegistries(
      [ns({ name: 'svc', matches: [{ sourceSelector: {}, routes: [{ destinationSelector: { role: 'none' } }] }] })],
      [nse('a', ['svc'], 'u', { svc: { role: 'x' } })],
    );
    await assert.rejects(candidatesFor(regs, request('svc')), { name: 'NotFoundError' });
  });

  it('named NSE: found by name without NS lookup; gone → NotFoundError', async () => {
    const regs = arrayRegistries([ns({ name: 'svc' })], [nse('nse-1', ['svc'], 'unix:///1'), nse('nse-2', ['svc'], 'unix:///2')]);
    const { names } = await candidatesFor(regs, request('svc', {}, 'nse-2'));
    assert.deepEqual(names, ['nse-2']);
    assert.equal(regs.nsQueries.length, 0);
    regs.endpoints.splice(1, 1);
    await assert.rejects(candidatesFor(regs, request('svc', {}, 'nse-2')), { name: 'NotFoundError' });
  });

  it('close resolves the NSE and always calls next, even with the registry down', async () => {
    const regs = arrayRegistries([ns({ name: 'svc' })], [nse('nse-1', ['svc'], 'unix:///1')]);
    const out: { names?: string[]; closed?: number } = {};
    const chain = networkServiceChain('t', [discoverServer(regs), capture(out)]);
    const conn = ConnectionFns.fromPartial({ id: 'c1', networkService: 'svc', networkServiceEndpointName: 'nse-1' });
    await chain.close(conn, newContext());
    assert.deepEqual(out.names, ['nse-1']);
    regs.down = true;
    await chain.close(conn, newContext());
    assert.equal(out.names, undefined);
    regs.down = false;
    regs.endpoints.length = 0;
    await chain.close(conn, newContext());
    await chain.close(ConnectionFns.fromPartial({ id: 'c1', networkService: 'svc' }), newContext());
    assert.equal(out.closed, 4);
  });
});
