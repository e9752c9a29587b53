import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenerNetns, netnsIdentity, parseUnixTable, peerOfFd, processNetns, socketFd } from './peer.js';

const IS_ROOT = process.getuid?.() === 0;

describe('peer', () => {
  it('parses a unix socket table: inode, listening flag, path (with spaces)', () => {
    const text = [
      'Num       RefCount Protocol Flags    Type St Inode Path',
      '0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/nsm/nsm.io.sock',
      '0000000000000000: 00000003 00000000 00000000 0001 03 4243',
      '0000000000000000: 00000003 00000000 00000000 0001 03 4244 /tmp/a b.sock',
    ].join('\n');
    assert.deepEqual(parseUnixTable(text), [
      { inode: 4242, listening: true, path: '/run/nsm/nsm.io.sock' },
      { inode: 4243, listening: false, path: undefined },
      { inode: 4244, listening: false, path: '/tmp/a b.sock' },
    ]);
  });

  it('netnsIdentity: inode:// as it is, file:// by stat, anything else undefined', async () => {
    assert.equal(await netnsIdentity('inode://4/4026531840'), 'inode://4/4026531840');
    assert.equal(await netnsIdentity('file:///proc/self/ns/net'), await processNetns('self'));
    assert.equal(await netnsIdentity('file:///nonexistent/ns'), undefined);
    assert.equal(await netnsIdentity('/proc/self/ns/net'), undefined);
  });

  it('finds the netns of a caller in another netns, and of a listening server', { skip: !IS_ROOT && 'needs root (netns)' }, async (t) => {
    const ns = `nsmt-peer-${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    const dir = mkdtempSync(join(tmpdir(), 'nsmt-peer-'));
    t.after(() => {
      execFileSync('ip', ['netns', 'del', ns]);
      rmSync(dir, { recursive: true, force: true });
    });
    const path = join(dir, 's.sock');
    const accepted = new Promise<Socket>((resolve) => {
      const server = createServer((s) => resolve(s));
      server.listen(path);
      t.after(() => server.close());
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(await listenerNetns(path), await processNetns('self'));
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', `require('net').connect(${JSON.stringify(path)}); setTimeout(() => {}, 30000)`], { stdio: 'ignore' });
    t.after(() => child.kill('SIGKILL'));
    const socket = await accepted;
    t.after(() => socket.destroy());
    const peer = await peerOfFd(socketFd(socket)!);
    assert.equal(peer?.netns, await netnsIdentity(`file:///run/netns/${ns}`));
    assert.equal(await listenerNetns(join(dir, 'none.sock')), undefined);
  });
});
