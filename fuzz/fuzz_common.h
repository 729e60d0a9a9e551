// Shared by the fuzz targets: the per-process scratch directory, writing an input to a file,
// and how a finding is reported.
//
// Hard findings (crash, ASan/UBSan report, leak, timeout, OOM) stop libFuzzer, which saves the
// input. Soft findings (an exception other than sq::Error escaping a parser, a broken round
// trip or invariant) abort as well, unless SQ_FUZZ_FINDINGS_DIR names a directory: then the
// first inputs of each distinct kind are saved there as soft-<pid>-N.input with
// soft-<pid>-N.txt (what happened) and fuzzing goes on, so one shallow finding does not hide
// the deeper ones for the rest of the run (bench/fuzz.sh sets it to build-fuzz/findings/<t>/).
#pragma once
#include <cxxabi.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <string>
#include <typeinfo>

#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"

namespace sqfuzz {

[[noreturn]] inline void fatal(const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "FINDING: %s: %s\n", what.c_str(), detail.c_str());
  std::abort();
}

inline void write_bytes(const std::string& path, const uint8_t* data, size_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fatal("harness", "cannot create " + path + ": " + std::strerror(errno));
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n <= 0) fatal("harness", "cannot write " + path + ": " + std::strerror(errno));
    data += n;
    size -= size_t(n);
  }
  ::close(fd);
}

// A fresh directory under $TMPDIR (else /tmp), removed at a normal exit by the caller's
// cleanup list (files first).
inline std::string scratch_dir(const char* tag) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/sqfuzz_" + tag + ".XXXXXX";
  if (!::mkdtemp(templ.data())) fatal("harness", "mkdtemp " + templ + ": " + std::strerror(errno));
  return templ;
}

// Digits and long runs of input bytes should not make every occurrence a new kind.
inline std::string kind_key(const std::string& kind, const std::string& detail) {
  std::string k = kind + "|";
  size_t line_end = detail.find('\n');
  std::string first = detail.substr(0, line_end == std::string::npos ? detail.size() : line_end);
  for (char ch : first) {
    if (k.size() > kind.size() + 160) break;
    if (ch >= '0' && ch <= '9') {
      if (k.back() != '#') k += '#';
    } else {
      k += ch;
    }
  }
  return k;
}

inline void soft_finding(const std::string& kind, const std::string& detail, const uint8_t* data, size_t size) {
  static const char* dir = std::getenv("SQ_FUZZ_FINDINGS_DIR");
  if (!dir || !*dir) fatal(kind, detail);
  static std::map<std::string, int> seen;  // key -> hits
  static int saved = 0;
  const std::string key = kind_key(kind, detail);
  int& hits = seen[key];
  if (hits++ > 0 || saved >= 20) return;
  const std::string base =
      std::string(dir) + "/soft-" + std::to_string(::getpid()) + "-" + std::to_string(++saved);
  write_bytes(base + ".input", data, size);
  const std::string text = "kind: " + kind + "\ndetail: " + detail + "\n";
  write_bytes(base + ".txt", reinterpret_cast<const uint8_t*>(text.data()), text.size());
  std::fprintf(stderr, "SOFT FINDING %s.input: %s: %.300s\n", base.c_str(), kind.c_str(), detail.c_str());
}

inline std::string type_name(const std::exception& e) {
  int status = 0;
  char* d = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
  std::string s = status == 0 && d ? d : typeid(e).name();
  std::free(d);
  return s;
}

// An exception other than sq::Error escaped the code under test.
inline void foreign_exception(const std::exception& e, const uint8_t* data, size_t size) {
  soft_finding("exception other than sq::Error: " + type_name(e), e.what(), data, size);
}

// SQ_FUZZ_VERBOSE=1: one line per input saying whether the parser accepted it (to check that
// the seeds are valid files: ./fuzz_x corpus/fuzz_x/* with SQ_FUZZ_VERBOSE=1).
// An environment switch: set, non-empty and not "0".
inline bool env_flag(const char* name) {
  const char* e = std::getenv(name);
  return e && *e && *e != '0';
}
inline bool verbose() {
  static const bool v = env_flag("SQ_FUZZ_VERBOSE");
  return v;
}
inline void accepted(const char* what) {
  if (verbose()) std::fprintf(stderr, "ACCEPTED %s\n", what);
}
inline void rejected(const std::exception& e) {
  if (verbose()) std::fprintf(stderr, "REJECTED %.400s\n", e.what());
}

// One input through BODY: returning accepts it, sq::Error is the expected one-line rejection,
// any other exception a soft finding. Always 0, as libFuzzer wants.
template <class Body>
int run_input(const uint8_t* data, size_t size, Body&& body) {
  try {
    body();
    accepted("input");
  } catch (const sq::Error& e) {
    rejected(e);
  } catch (const std::exception& e) {
    foreign_exception(e, data, size);
  }
  return 0;
}

}  // namespace sqfuzz
