// core/util: small shared helpers: files (atomic writes), hashing, dtype names, memory.
#pragma once
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sq {

std::string read_file(const std::string& path);  // throws Error naming the path
// Writes to "<path>.tmp.<pid>" then renames over path; never leaves a half-written file.
void write_file_atomic(const std::string& path, const std::string& contents);
// Throws Error ("<what> FILE: directory D does not exist / is not writable") before long work.
void check_writable_file(const std::string& path, const std::string& what);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
std::string path_join(const std::string& a, const std::string& b);
std::string parent_dir(const std::string& path);

std::string sha256_hex(const void* data, size_t n);
inline std::string sha256_hex(const std::string& s) { return sha256_hex(s.data(), s.size()); }
std::string sha256_file(const std::string& path);

// "float32" | "fp32" | "bfloat16" | "bf16" | "float16" | "fp16" -> ScalarType (UsageError otherwise)
c10::ScalarType parse_dtype(const std::string& name);
std::string dtype_name(c10::ScalarType t);

int64_t peak_rss_bytes();  // this process's peak resident set size
// Sets glibc malloc's mmap threshold to 32 MiB and its trim threshold to 128 MiB, so that the
// tensors a pass allocates and frees in a loop are reused from the heap instead of being
// mapped, faulted in page by page and returned to the kernel every time (src/core/util.cpp has
// the measurements). Leaves the allocator alone when the user tuned it (GLIBC_TUNABLES with a
// glibc.malloc key, MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_) and off glibc. Returns
// whether it changed anything. Called first by the CLI and the test binary.
bool tune_allocator();
std::string human_bytes(double bytes);
bool stderr_is_tty();

}  // namespace sq
