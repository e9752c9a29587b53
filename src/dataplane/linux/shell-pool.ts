/**
 * Short commands (`ip -batch`, `nsenter … sh`) run by a few long-lived `sh` processes instead of a
 * spawn each. Node's spawn forks the whole Node process and blocks its event loop until the child has
 * exec'd: 3–5 ms of the main thread per command in a forwarder of 100+ MiB, a third of its busy time
 * while connections were set up (profiles of the scale bench). Forking a small shell costs a fraction
 * of that and happens outside Node's main thread.
 *
 * Protocol, one job at a time per shell: Node writes `<argv, shell-quoted> >out 2>err <<'END'`, the job's
 * stdin, `END` and `echo "@@nsm-done $?"` to the shell; on that line it reads the output files. Files, not
 * pipes, so stdout and stderr stay apart whatever their size: small files in /dev/shm (tmpfs; else the
 * temp dir), read synchronously (cheaper than thread-pool round trips). Each shell runs
 * in its own process group: a cancelled or timed-out job kills the group (shell and command) and the
 * next job gets a new shell. Shells are started on demand (at most `size`), kept while the process
 * lives, and do not keep it alive; they exit with it (stdin closes), and are killed by an `exit` hook.
 * Each removes its files when it exits (an EXIT trap), so a Node process killed by SIGKILL leaves no
 * work dir behind.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

export interface ShellResult {
  /** Exit status as the shell reports it (128+n for a command killed by signal n). */
  code: number;
  stdout: string;
  stderr: string;
}

/** Shells kept per process (commands running at once). */
export const SHELL_POOL_SIZE = 4;

const DONE = '@@nsm-done ';
const HERE_END = '@@nsm-stdin-end@@';

/** `arg` as one shell word. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

interface Job {
  argv: string[];
  input: string;
  signal: AbortSignal;
  resolve(r: ShellResult): void;
  reject(e: unknown): void;
}

class Shell {
  readonly #child: ChildProcessByStdio<Writable, Readable, null>;
  readonly #files: { in: string; out: string; err: string };
  #buf = '';
  #waiting?: (code: number | Error) => void;
  readonly #onDeath: (s: Shell) => void;
  #reported = false;
  dead = false;

  constructor(dir: string, k: number, env: NodeJS.ProcessEnv, onDeath: (s: Shell) => void) {
    this.#files = { in: join(dir, `${k}.in`), out: join(dir, `${k}.out`), err: join(dir, `${k}.err`) };
    this.#child = spawn('/bin/sh', ['-s'], { stdio: ['pipe', 'pipe', 'ignore'], detached: true, env });
    this.#child.stdin.on('error', () => undefined); // EPIPE after it died: 'close' reports it.
    this.#child.stdout.setEncoding('utf8');
    this.#child.stdout.on('data', (chunk: string) => this.#onData(chunk));
    this.#onDeath = onDeath;
    const die = (why: string) => {
      this.dead = true;
      this.#waiting?.(new Error(why));
      this.#gone();
    };
    // Its files go when it exits, also when Node was killed (stdin closes); the last one out takes the dir.
    const files = [this.#files.in, this.#files.out, this.#files.err].map(shellQuote).join(' ');
    this.#child.stdin.write(`trap 'rm -f ${files}; rmdir ${shellQuote(dir)} 2>/dev/null' EXIT\n`);
    this.#child.on('error', (e) => die(`cannot run /bin/sh: ${e.message}`));
    this.#child.on('close', (code, sig) => die(`the command shell exited (${code ?? sig})`));
    this.idle();
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Tells the pool once that this shell is gone (it may start another). */
  #gone(): void {
    if (this.#reported) return;
    this.#reported = true;
    this.#onDeath(this);
  }

  /** Not keeping the process alive while it waits for work. */
  idle(): void {
    this.#child.unref();
    (this.#child.stdout as unknown as { unref?(): void }).unref?.();
    (this.#child.stdin as unknown as { unref?(): void }).unref?.();
  }

  #busy(): void {
    this.#child.ref();
    (this.#child.stdout as unknown as { ref?(): void }).ref?.();
    (this.#child.stdin as unknown as { ref?(): void }).ref?.();
  }

  #onData(chunk: string): void {
    this.#buf += chunk;
    for (let nl = this.#buf.indexOf('\n'); nl >= 0; nl = this.#buf.indexOf('\n')) {
      const line = this.#buf.slice(0, nl);
      this.#buf = this.#buf.slice(nl + 1);
      if (line.startsWith(DONE)) this.#waiting?.(Number(line.slice(DONE.length)));
    }
  }

  /** Kills the shell and whatever it runs (its process group). */
  kill(): void {
    const pid = this.#child.pid;
    this.dead = true;
    for (const f of Object.values(this.#files)) rmSync(f, { force: true });
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.#gone();
  }

  async run(job: Job): Promise<ShellResult> {
    const f = this.#files;
    const input = job.input === '' || job.input.endsWith('\n') ? job.input : `${job.input}\n`;
    // stdin as a here-document (no file write), unless a line of it would end the here-document early.
    const inline = !input.split('\n').includes(HERE_END);
    if (!inline) writeFileSync(f.in, input);
    if (this.dead) throw new Error('the command shell exited');
    this.#busy();
    try {
      const code = await new Promise<number>((resolve, reject) => {
        const onAbort = () => {
          this.kill();
          reject(job.signal.reason instanceof Error ? job.signal.reason : new Error('cancelled'));
        };
        if (job.signal.aborted) return onAbort();
        job.signal.addEventListener('abort', onAbort, { once: true });
        this.#waiting = (r) => {
          this.#waiting = undefined;
          job.signal.removeEventListener('abort', onAbort);
          if (r instanceof Error) reject(r);
          else resolve(r);
        };
        const [i, o, e] = [f.in, f.out, f.err].map(shellQuote);
        const cmd = job.argv.map(shellQuote).join(' ');
        this.#child.stdin.write(
          inline ? `${cmd} >${o} 2>${e} <<'${HERE_END}'\n${input}${HERE_END}\necho "${DONE}$?"\n` : `${cmd} <${i} >${o} 2>${e}; echo "${DONE}$?"\n`,
        );
      });
      return { code, stdout: readFileSync(f.out, 'utf8'), stderr: readFileSync(f.err, 'utf8') };
    } finally {
      if (!this.dead) this.idle();
    }
  }
}

/** The pool cannot run anything here (no writable temp dir): run commands another way. */
export class ShellPoolUnavailable extends Error {
  override name = 'ShellPoolUnavailable';
}

export class ShellPool {
  readonly #size: number;
  readonly #env: NodeJS.ProcessEnv;
  readonly #idle: Shell[] = [];
  readonly #all = new Set<Shell>();
  readonly #queue: Job[] = [];
  #dir?: string;
  #next = 0;

  constructor(size: number, env: NodeJS.ProcessEnv) {
    this.#size = size;
    this.#env = env;
  }

  /** The dir of the job files, once a shell has started (tests). */
  get workDir(): string | undefined {
    return this.#dir;
  }

  /** Runs `argv` with `input` on stdin; rejects when `signal` aborts (the command is killed) or no shell can run. */
  run(argv: string[], input: string, signal: AbortSignal): Promise<ShellResult> {
    return new Promise<ShellResult>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason instanceof Error ? signal.reason : new Error('cancelled'));
      const job: Job = { argv, input, signal, resolve, reject };
      const onAbort = () => {
        const i = this.#queue.indexOf(job);
        if (i < 0) return;
        this.#queue.splice(i, 1);
        reject(signal.reason instanceof Error ? signal.reason : new Error('cancelled'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      job.resolve = (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      };
      job.reject = (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      };
      this.#queue.push(job);
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      let shell: Shell | undefined;
      try {
        shell = this.#take();
      } catch (err) {
        for (const job of this.#queue.splice(0)) job.reject(err);
        return;
      }
      if (!shell) return;
      const job = this.#queue.shift()!;
      shell.run(job).then(job.resolve, job.reject).finally(() => {
        if (!shell.dead) this.#idle.push(shell);
        this.#pump();
      });
    }
  }

  #take(): Shell | undefined {
    while (this.#idle.length > 0) {
      const s = this.#idle.pop()!;
      if (!s.dead) return s;
    }
    if (this.#all.size >= this.#size) return undefined;
    const s = new Shell(this.#workDir(), this.#next++, this.#env, (d) => {
      this.#all.delete(d);
      queueMicrotask(() => this.#pump());
    });
    this.#all.add(s);
    return s;
  }

  #workDir(): string {
    if (!this.#dir) {
      try {
        this.#dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'nsm-sh-'));
      } catch (err) {
        throw new ShellPoolUnavailable(`no work dir for command shells in ${tmpdir()}: ${(err as Error).message}`, { cause: err });
      }
      const dir = this.#dir;
      process.once('exit', () => {
        for (const s of this.#all) s.kill();
        rmSync(dir, { recursive: true, force: true });
      });
    }
    return this.#dir;
  }
}
