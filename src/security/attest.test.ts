import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsIdentity, processNetns, socketFd } from '../core/peer.js';
import { attestSocket, parsePeerInode, parseStartTime, parseStatusIds, readProcess } from './attest.js';

const IS_ROOT = process.getuid?.() === 0;

describe('attest', () => {
  it('parsePeerInode takes the row whose own inode is ours, whatever a bound path says', () => {
    const ss = [
      'u_str ESTAB 0      0                                   * 30264 * 30265',
      'u_str ESTAB 0      0     /tmp/evil 13800 * 666 x.sock 30843 * 13800   ',
      'u_str ESTAB 0      0                     /tmp/srv.sock 13800 * 30843  ',
      'u_str LISTEN 0     4096                  /tmp/srv.sock 13700 * 0',
    ].join('\n');
    assert.equal(parsePeerInode(ss, 13800), 30843);
    assert.equal(parsePeerInode(ss, 30264), 30265);
    assert.equal(parsePeerInode(ss, 13700), undefined, 'a listener has no peer');
    assert.equal(parsePeerInode(ss, 1), undefined);
  });

  it('parseStatusIds takes the effective ids; parseStartTime survives a command name with ") "', () => {
    assert.deepEqual(parseStatusIds('Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t100\t5\t5\t5\n'), { uid: 0, gid: 5 });
    assert.equal(parseStatusIds('Name:\tx\n'), undefined);
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = 'S';
    fields[19] = '123456';
    assert.equal(parseStartTime(`42 (a) b (c) ${fields.join(' ')}`), 123456);
    fields[0] = 'Z';
    assert.equal(parseStartTime(`42 (a) ${fields.join(' ')}`), undefined, 'a zombie has no identity');
    assert.equal(parseStartTime(''), undefined);
  });

  it('readProcess reads this process as the kernel sees it', async () => {
    const me = await readProcess(process.pid);
    assert.ok(me);
    assert.equal(me.uid, process.geteuid!());
    assert.equal(me.exe, realpathSync(process.execPath));
    assert.equal(me.netns, await processNetns('self'));
    assert.deepEqual(me.cmdline, readFileSync('/proc/self/cmdline', 'utf8').split('\0').filter(Boolean));
    assert.ok(me.cmdline.includes(process.argv[1]) || me.cmdline.some((a) => a.endsWith('.js')));
    assert.ok(me.startTime > 0);
    assert.equal(await readProcess(0x3fffffff), undefined);
  });

  it('attests a caller in another netns: its pid, netns and start time; nothing once it is gone', { skip: !IS_ROOT && 'needs root (netns)' }, async (t) => {
    const ns = `nsmt-attest-${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    const dir = mkdtempSync(join(tmpdir(), 'nsmt-attest-'));
    t.after(() => {
      execFileSync('ip', ['netns', 'del', ns]);
      rmSync(dir, { recursive: true, force: true });
    });
    const path = join(dir, 's.sock');
    const server = createServer();
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((r) => server.listen(path, r));
    t.after(() => server.close());
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', `require('net').connect(${JSON.stringify(path)}); setTimeout(() => {}, 30000)`], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    t.after(() => child.kill('SIGKILL'));
    const socket = await accepted;
    t.after(() => socket.destroy());
    const att = await attestSocket(socketFd(socket)!);
    const podNetns = await netnsIdentity(`file:///run/netns/${ns}`);
    assert.equal(att.socketNetns, podNetns);
    assert.equal(att.holders.length, 1);
    const [h] = att.holders;
    assert.equal(h.pid, child.pid, '`ip netns exec` execs node in place: the holder is the pid we spawned');
    assert.equal(h.netns, podNetns);
    assert.equal(h.uid, 0);
    assert.equal(h.exe, realpathSync(process.execPath));
    assert.equal(h.startTime, (await readProcess(child.pid!))!.startTime);
    child.kill('SIGKILL');
    await exited;
    await assert.rejects(attestSocket(socketFd(socket)!), { name: 'PermissionDeniedError' });
  });
});
