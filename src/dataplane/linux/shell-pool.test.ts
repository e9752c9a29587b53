import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { sleep } from '../../core/signals.js';
import { ShellPool, shellQuote } from './shell-pool.js';

const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' };
const never = () => new AbortController().signal;

describe('ShellPool (commands through long-lived shells)', () => {
  it('runs argv with stdin; stdout, stderr and the exit status come back apart', async () => {
    const pool = new ShellPool(2, env);
    const r = await pool.run(['sh', '-c', 'cat; echo oops >&2; exit 3'], 'line 1\nline 2\n', never());
    assert.deepEqual(r, { code: 3, stdout: 'line 1\nline 2\n', stderr: 'oops\n' });
  });

  it('stdin without a final newline, and stdin holding the here-document end marker, arrive unchanged in content', async () => {
    const pool = new ShellPool(1, env);
    assert.equal((await pool.run(['cat'], 'no newline', never())).stdout, 'no newline\n');
    const tricky = 'a\n@@nsm-stdin-end@@\nb\n';
    assert.equal((await pool.run(['cat'], tricky, never())).stdout, tricky);
    assert.equal((await pool.run(['cat'], '', never())).stdout, '');
  });

  it('arguments reach the command unchanged, whatever characters they hold', async () => {
    const pool = new ShellPool(1, env);
    const args = ["it's", 'two words', '$HOME', '`x`', 'a"b', '--', '*', ''];
    const r = await pool.run(['sh', '-c', 'for a in "$@"; do printf "<%s>" "$a"; done', 'sh', ...args], '', never());
    assert.equal(r.stdout, args.map((a) => `<${a}>`).join(''));
    assert.equal(shellQuote('plain-word_1.2/3'), 'plain-word_1.2/3');
  });

  it('more jobs than shells: each gets its own output', async () => {
    const pool = new ShellPool(3, env);
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => pool.run(['sh', '-c', `sleep 0.0${i % 3}; echo ${i}; cat`], `in ${i}\n`, never())));
    rs.forEach((r, i) => assert.deepEqual(r, { code: 0, stdout: `${i}\nin ${i}\n`, stderr: '' }));
  });

  it('abort kills the running command at once, and the next job runs', async () => {
    const pool = new ShellPool(1, env);
    const ac = new AbortController();
    const t0 = Date.now();
    const p = pool.run(['sleep', '30'], '', ac.signal);
    setTimeout(() => ac.abort(new Error('stop now')), 100);
    await assert.rejects(p, /stop now/);
    assert.ok(Date.now() - t0 < 5000, 'did not wait for sleep 30');
    assert.equal((await pool.run(['echo', 'again'], '', never())).stdout, 'again\n');
  });

  it('a job aborted while queued never runs', async () => {
    const pool = new ShellPool(1, env);
    const first = pool.run(['sleep', '0.2'], '', never());
    const ac = new AbortController();
    const queued = pool.run(['echo', 'no'], '', ac.signal);
    ac.abort(new Error('gone'));
    await assert.rejects(queued, /gone/);
    assert.equal((await first).code, 0);
  });

  it('a command that does not exist: status 127 and the shell says so', async () => {
    const r = await new ShellPool(1, env).run(['/nonexistent/nsm-ip'], '', never());
    assert.equal(r.code, 127);
    assert.match(r.stderr, /not found/);
  });

  it('a process killed by SIGKILL leaves no work dir: the shells clean up when their stdin closes', async () => {
    const mod = new URL('./shell-pool.js', import.meta.url).href;
    const script = `const m = await import(${JSON.stringify(mod)}); const p = new m.ShellPool(3, process.env); const s = new AbortController().signal;
      await Promise.all([1, 2, 3].map(() => p.run(['echo', 'x'], 'in', s))); console.log(p.workDir); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const dir = await new Promise<string>((resolve) => child.stdout.once('data', (b: Buffer) => resolve(b.toString().trim())));
    assert.ok(existsSync(dir), dir);
    child.kill('SIGKILL');
    for (let i = 0; i < 100 && existsSync(dir); i++) await sleep(50);
    assert.equal(existsSync(dir), false, `${dir} removed`);
  });
});
