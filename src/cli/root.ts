/** One clear line when a command needs root. */
export function requireRoot(what: string): void {
  if (process.getuid && process.getuid() !== 0) {
    process.stderr.write(`nsm ${what}: must run as root: it creates network namespaces and veth interfaces (try: sudo nsm ${what})\n`);
    process.exit(1);
  }
}
