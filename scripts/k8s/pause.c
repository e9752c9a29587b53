/*
 * The sandbox ("pause") process of every pod of the local cluster (scripts/k8s-cluster.sh): no
 * registry is reachable on the test machines, so the sandbox image is built here from this file
 * (gcc -static) instead of being pulled. It holds the pod's namespaces open, reaps the zombies
 * it inherits as the pod's PID 1 and exits on SIGINT/SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) { _exit(128 + sig); }

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

static int handle(int sig, void (*fn)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fn;
  sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    puts("nsm-ts pause");
    return 0;
  }
  if (getpid() != 1) fputs("pause: warning: not PID 1\n", stderr);
  if (handle(SIGINT, on_stop) || handle(SIGTERM, on_stop) || handle(SIGCHLD, on_child)) {
    perror("pause: sigaction");
    return 1;
  }
  for (;;) pause();
}
