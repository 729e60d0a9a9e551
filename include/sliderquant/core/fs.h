// core/fs: file-system operations for outputs that must never be partial, shared or shell-
// interpreted. Nothing here runs a shell: every operation is std::filesystem or a POSIX call,
// so any byte a path may hold (quotes, spaces, ';', '$()', newlines, a leading '-') is just a
// byte of the name.
//
// Temporary names: "<path>.tmp.<host>.<pid>" (and "<path>.old.<host>.<pid>" while an output is
// being replaced without RENAME_EXCHANGE). The host part keeps a run on one node of a cluster
// from judging another node's live temporary as debris on a shared file system.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace sq {

// "<path>.tmp.<host>.<pid>" for this process.
std::string temp_sibling(const std::string& path);

// Puts TMP at PATH. When PATH exists it is swapped with TMP in one step (renameat2 with
// RENAME_EXCHANGE), so a complete PATH is there at every instant, and the old content (now at
// TMP) is removed; where the file system cannot exchange, the old PATH is renamed aside first.
// Throws Error naming both paths on failure (TMP is then left for the caller to remove).
void replace_path(const std::string& tmp, const std::string& path);

// Removes the temporaries of PATH ("<path>.tmp.<host>.<pid>", "<path>.old.<host>.<pid>", and
// the host-less "<path>.tmp.<pid>" of older versions) whose process is no longer running on
// this host; logs and returns each one removed. Temporaries of live processes, or of other
// hosts, are left alone.
std::vector<std::string> remove_stale_temps(const std::string& path);

// Best-effort recursive removal (no error when PATH is absent); never follows a symlink.
void remove_path(const std::string& path) noexcept;

// True when A and B name the same file system object, or A lies inside directory B (after
// resolving ".", "..", and symlinks of the parts that exist).
bool same_or_inside(const std::string& a, const std::string& b);

// An advisory lock (flock) on LOCK_PATH, held until destruction. LOCK_PATH is created if
// needed and holds the owner's pid. A second process gets Error "WHAT is in use by pid N
// (LOCK_PATH)"; the lock ends with the process, however it ends.
class FileLock {
 public:
  FileLock() = default;
  static FileLock acquire(const std::string& lock_path, const std::string& what);
  FileLock(FileLock&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
  FileLock& operator=(FileLock&& o) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  std::string path_;
};

// What identifies a model's content: {"file name": {"bytes": N, "sha256": "..."}} for every
// regular file of DIR (or the single file DIR names), sorted by name. Each file's SHA-256 is
// computed once and cached (keyed by device, inode, size and modification and change times)
// in $SQ_CACHE_DIR, $XDG_CACHE_HOME/sliderquant or ~/.cache/sliderquant (fingerprints.json);
// an unwritable cache only costs the hashing again.
nlohmann::json content_fingerprint(const std::string& dir_or_file);

}  // namespace sq
