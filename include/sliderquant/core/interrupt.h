// core/interrupt: stop requests from signals, honoured at safe points.
// A batch scheduler (Slurm's --signal, a preemption, a time limit) sends SIGUSR1 or SIGTERM
// ahead of a kill. `quantize` installs the handler; long passes call `stop_point` right after
// writing a checkpoint (end of a block, of a window stage, of a search), and a pending request
// then ends the run with `Preempted`, which the CLI maps to exit code 75 (EX_TEMPFAIL): run the
// same command again and it resumes from the work directory. A second signal of the same kind
// is not caught (the handler resets itself), so a repeated kill stops at once.
#pragma once
#include <string>

#include "sliderquant/core/error.h"

namespace sq {

// The run stopped at a safe point on request; its checkpoint is complete.
struct Preempted : Error {
  using Error::Error;
};

inline constexpr int kPreemptedExitCode = 75;  // sysexits.h EX_TEMPFAIL: try again later

// Catches SIGTERM and SIGUSR1 (once each) for the rest of the process.
void install_stop_signals();
// The signal that asked for a stop, or 0.
int stop_signal();
// For tests and for callers that stop for their own reasons: as if SIG had arrived (0 clears).
void request_stop(int sig);
// A safe point: WHAT names the checkpoint just written ("block 3 of 8"), WHERE its folder.
// Throws Preempted when a stop was requested; nothing happens otherwise.
void stop_point(const std::string& what, const std::string& where);

}  // namespace sq
