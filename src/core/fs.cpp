// core/fs: temporaries, atomic replacement, stale-debris cleanup, locks and content
// fingerprints, all without a shell (see fs.h).
#include "sliderquant/core/fs.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>  // renameat2 (glibc >= 2.28)
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "sliderquant/core/error.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/util.h"

namespace fs = std::filesystem;

namespace sq {
namespace {

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "localhost";
  std::string h(buf);
  for (char& c : h)
    if (c == '/') c = '_';
  return h;
}

bool all_digits(const std::string& s) {
  if (s.empty() || s.size() > 10) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

bool pid_alive(long pid) {
  if (pid <= 0) return true;  // cannot judge: keep
  return ::kill(pid_t(pid), 0) == 0 || errno != ESRCH;
}

}  // namespace

std::string temp_sibling(const std::string& path) {
  return path + ".tmp." + host_name() + "." + std::to_string(::getpid());
}

void remove_path(const std::string& path) noexcept {
  std::error_code ec;
  fs::remove_all(fs::path(path), ec);  // remove_all does not follow symlinks
}

void replace_path(const std::string& tmp, const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (std::rename(tmp.c_str(), path.c_str()) == 0) return;
    int e = errno;
    SQ_FAIL("cannot rename " << tmp << " to " << path << ": " << std::strerror(e));
  }
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_EXCHANGE) == 0) {
    remove_path(tmp);  // now the old content
    return;
  }
  const int xe = errno;
  SQ_CHECK(xe == EINVAL || xe == ENOSYS || xe == ENOTSUP || xe == EXDEV,
           "cannot replace " << path << " with " << tmp << ": " << std::strerror(xe));
  // No exchange on this file system: the old output goes aside for the instant of the rename.
  const std::string aside = path + ".old." + host_name() + "." + std::to_string(::getpid());
  remove_path(aside);
  if (std::rename(path.c_str(), aside.c_str()) != 0) {
    int e = errno;
    SQ_FAIL("cannot move the old " << path << " aside to " << aside << ": " << std::strerror(e));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::rename(aside.c_str(), path.c_str());  // put the old one back
    SQ_FAIL("cannot rename " << tmp << " to " << path << ": " << std::strerror(e));
  }
  remove_path(aside);
}

std::vector<std::string> remove_stale_temps(const std::string& path) {
  std::vector<std::string> removed;
  const fs::path p(path);
  const std::string base = p.filename().string();
  if (base.empty()) return removed;
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  const std::string me = host_name();
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) return removed;
  std::vector<fs::path> stale;
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    for (const char* tag : {".tmp.", ".old."}) {
      const std::string prefix = base + tag;
      if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
      const std::string rest = name.substr(prefix.size());  // "<host>.<pid>" or "<pid>"
      std::string host, pid;
      if (auto dot = rest.rfind('.'); dot != std::string::npos) {
        host = rest.substr(0, dot);
        pid = rest.substr(dot + 1);
      } else {
        host = me;  // the host-less form of older versions
        pid = rest;
      }
      if (host != me || !all_digits(pid) || pid_alive(std::atol(pid.c_str()))) continue;
      stale.push_back(it->path());
    }
  }
  for (const fs::path& s : stale) {
    remove_path(s.string());
    if (!fs::exists(fs::symlink_status(s))) {
      SQ_INFO("removed " << s.string() << ", left by a run that no longer exists");
      removed.push_back(s.string());
    }
  }
  return removed;
}

bool same_or_inside(const std::string& a, const std::string& b) {
  auto norm = [](const std::string& x, std::string& out) {
    std::error_code ec;
    fs::path p = fs::absolute(x, ec);
    if (ec) return false;
    p = fs::weakly_canonical(p, ec);
    if (ec) return false;
    out = p.lexically_normal().string();
    while (out.size() > 1 && out.back() == '/') out.pop_back();
    return true;
  };
  std::string ca, cb;
  if (!norm(a, ca) || !norm(b, cb)) return false;
  if (ca == cb) return true;
  const std::string prefix = cb == "/" ? cb : cb + "/";
  return ca.compare(0, prefix.size(), prefix) == 0;
}

FileLock FileLock::acquire(const std::string& lock_path, const std::string& what) {
  FileLock l;
  l.fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  SQ_CHECK(l.fd_ >= 0, "cannot create the lock file " << lock_path << ": " << std::strerror(errno));
  l.path_ = lock_path;
  if (::flock(l.fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    char buf[32] = {0};
    ssize_t n = ::pread(l.fd_, buf, sizeof buf - 1, 0);
    std::string owner = n > 0 ? std::string(buf, size_t(n)) : "";
    while (!owner.empty() && (owner.back() == '\n' || owner.back() == ' ')) owner.pop_back();
    if (e == EWOULDBLOCK)
      SQ_FAIL(what << " is in use by " << (owner.empty() ? std::string("another process") : "pid " + owner) << " ("
                   << lock_path << "); wait for it to finish or choose another output");
    SQ_FAIL("cannot lock " << lock_path << ": " << std::strerror(e));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(l.fd_, 0) == 0) {
    ssize_t w = ::pwrite(l.fd_, pid.data(), pid.size(), 0);
    (void)w;  // the pid is informative; the lock is what matters
  }
  return l;
}

FileLock& FileLock::operator=(FileLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    path_ = std::move(o.path_);
    o.fd_ = -1;
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

namespace {

std::string cache_dir() {
  if (const char* d = std::getenv("SQ_CACHE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return path_join(d, "sliderquant");
  if (const char* h = std::getenv("HOME"); h && *h) return path_join(path_join(h, ".cache"), "sliderquant");
  return "";
}

std::string stat_key(const fs::path& p, const struct stat& st) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  return abs.string() + "|" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
         std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec) + ":" + std::to_string(st.st_ctim.tv_sec) + "." +
         std::to_string(st.st_ctim.tv_nsec);
}

}  // namespace

nlohmann::json content_fingerprint(const std::string& dir_or_file) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_directory(dir_or_file, ec)) {
    for (const fs::directory_entry& e : fs::directory_iterator(dir_or_file, ec))
      if (e.is_regular_file(ec)) files.push_back(e.path());
    SQ_CHECK(!ec, "cannot list " << dir_or_file << ": " << ec.message());
  } else {
    files.push_back(dir_or_file);
  }
  std::sort(files.begin(), files.end());

  const std::string cdir = cache_dir();
  const std::string cache_path = cdir.empty() ? "" : path_join(cdir, "fingerprints.json");
  nlohmann::json cache = nlohmann::json::object();
  if (!cache_path.empty() && path_exists(cache_path)) {
    try {
      cache = nlohmann::json::parse(read_file(cache_path));
      if (!cache.is_object()) cache = nlohmann::json::object();
    } catch (const std::exception&) {
      cache = nlohmann::json::object();  // a damaged cache is rebuilt
    }
  }
  bool changed = false;
  nlohmann::json out = nlohmann::json::object();
  for (const fs::path& f : files) {
    struct stat st;
    SQ_CHECK(::stat(f.c_str(), &st) == 0, "cannot stat " << f.string() << ": " << std::strerror(errno));
    const std::string key = stat_key(f, st);
    std::string sha;
    if (auto it = cache.find(key); it != cache.end() && it->is_string() && it->get<std::string>().size() == 64) {
      sha = it->get<std::string>();
    } else {
      if (st.st_size > (64 << 20)) SQ_INFO("fingerprinting " << f.string() << " (" << human_bytes(double(st.st_size))
                                                             << ", once; cached by size and time)");
      sha = sha256_file(f.string());
      cache[key] = sha;
      changed = true;
    }
    out[f.filename().string()] = {{"bytes", int64_t(st.st_size)}, {"sha256", sha}};
  }
  if (changed && !cache_path.empty()) {
    // Entries of files that no longer exist are dropped; a write failure is not an error.
    nlohmann::json kept = nlohmann::json::object();
    for (auto it = cache.begin(); it != cache.end(); ++it) {
      const std::string& k = it.key();
      if (fs::exists(k.substr(0, k.find('|')), ec)) kept[k] = *it;
    }
    try {
      fs::create_directories(cdir, ec);
      write_file_atomic(cache_path, kept.dump(1) + "\n");
    } catch (const std::exception&) {
    }
  }
  return out;
}

}  // namespace sq
