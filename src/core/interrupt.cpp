// core/interrupt: the stop flag set by SIGTERM / SIGUSR1 and the safe points that honour it.
#include "sliderquant/core/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "sliderquant/core/log.h"

namespace sq {
namespace {

std::atomic<int> g_stop{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

void on_stop_signal(int sig) {
  int expected = 0;
  g_stop.compare_exchange_strong(expected, sig);
  // async-signal-safe: write(2) and a constant message only.
  const char* msg = sig == SIGUSR1 ? "sliderquant: SIGUSR1 received: stopping at the next checkpoint\n"
                                   : "sliderquant: SIGTERM received: stopping at the next checkpoint\n";
  ssize_t ignored = ::write(STDERR_FILENO, msg, std::strlen(msg));
  (void)ignored;
}

}  // namespace

void install_stop_signals() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_RESTART;  // once: a second signal takes its default action
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGUSR1, &sa, nullptr);
}

int stop_signal() { return g_stop.load(); }

void request_stop(int sig) { g_stop.store(sig); }

void stop_point(const std::string& what, const std::string& where) {
  // Test hook: a real SIGUSR1 to this process at the N-th safe point, so tests and the Slurm
  // check can stop a run at a known checkpoint without racing it.
  static int calls = 0;
  if (const char* env = std::getenv("SQ_TEST_SIGNAL_AT_CHECKPOINT"))
    if (++calls == std::atoi(env)) ::raise(SIGUSR1);
  const int sig = g_stop.load();
  if (sig == 0) return;
  const char* name = sig == SIGUSR1 ? "SIGUSR1" : sig == SIGTERM ? "SIGTERM" : "a stop request";
  if (where.empty())
    throw Preempted(std::string("stopped by ") + name + " after " + what +
                    " (no work directory, nothing to resume from)");
  throw Preempted(std::string("stopped by ") + name + " after " + what + "; the checkpoint is in " + where +
                  ": run the same command again to resume");
}

}  // namespace sq
