// io/safetensors: reads .safetensors files (mmap, private copy-on-write, strict header
// validation, zero-copy tensor views) and checkpoints (single file, index + shards, or a
// directory of files); writes files atomically (temp file, fsync, rename) with an
// 8-byte aligned header, and sharded checkpoints with model.safetensors.index.json.
// Tensor names are opaque strings; nothing here knows about model architectures.
#include "sliderquant/io/safetensors.h"

#include <ATen/ATen.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "sliderquant/core/error.h"
#include "sliderquant/core/fs.h"
#include "sliderquant/core/util.h"

namespace sq {

using json = nlohmann::json;

// ---- dtypes ----------------------------------------------------------------------------
namespace {
constexpr StDType kAllDTypes[] = {StDType::F32, StDType::F16, StDType::BF16, StDType::F64,
                                  StDType::I8,  StDType::U8,  StDType::I16,  StDType::I32,
                                  StDType::I64, StDType::BOOL};

std::string known_dtypes() {
  std::string s;
  for (StDType t : kAllDTypes) s += (s.empty() ? "" : ", ") + std::string(st_dtype_name(t));
  return s;
}
}  // namespace

const char* st_dtype_name(StDType t) {
  switch (t) {
    case StDType::F32: return "F32";
    case StDType::F16: return "F16";
    case StDType::BF16: return "BF16";
    case StDType::F64: return "F64";
    case StDType::I8: return "I8";
    case StDType::U8: return "U8";
    case StDType::I16: return "I16";
    case StDType::I32: return "I32";
    case StDType::I64: return "I64";
    case StDType::BOOL: return "BOOL";
  }
  return "?";
}

StDType st_dtype_from_name(const std::string& s, const std::string& where) {
  for (StDType t : kAllDTypes)
    if (s == st_dtype_name(t)) return t;
  SQ_FAIL(where << ": unknown dtype \"" << s << "\" (known: " << known_dtypes() << ")");
}

size_t st_dtype_size(StDType t) {
  switch (t) {
    case StDType::F64: case StDType::I64: return 8;
    case StDType::F32: case StDType::I32: return 4;
    case StDType::F16: case StDType::BF16: case StDType::I16: return 2;
    case StDType::I8: case StDType::U8: case StDType::BOOL: return 1;
  }
  return 0;
}

c10::ScalarType st_to_scalar(StDType t) {
  switch (t) {
    case StDType::F32: return at::kFloat;
    case StDType::F16: return at::kHalf;
    case StDType::BF16: return at::kBFloat16;
    case StDType::F64: return at::kDouble;
    case StDType::I8: return at::kChar;
    case StDType::U8: return at::kByte;
    case StDType::I16: return at::kShort;
    case StDType::I32: return at::kInt;
    case StDType::I64: return at::kLong;
    case StDType::BOOL: return at::kBool;
  }
  return at::kFloat;
}

StDType st_from_scalar(c10::ScalarType t) {
  switch (t) {
    case at::kFloat: return StDType::F32;
    case at::kHalf: return StDType::F16;
    case at::kBFloat16: return StDType::BF16;
    case at::kDouble: return StDType::F64;
    case at::kChar: return StDType::I8;
    case at::kByte: return StDType::U8;
    case at::kShort: return StDType::I16;
    case at::kInt: return StDType::I32;
    case at::kLong: return StDType::I64;
    case at::kBool: return StDType::BOOL;
    default: break;
  }
  SQ_FAIL("dtype " << c10::toString(t) << " cannot be stored in safetensors (supported: "
                   << known_dtypes() << ")");
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- reading one file -------------------------------------------------------------------
namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Parses and checks one header entry (everything but the data-area bounds and overlaps).
TensorInfo parse_entry(const std::string& path, const std::string& name, const json& e) {
  const std::string where = path + ": tensor " + name;
  SQ_CHECK(e.is_object() && e.size() == 3 && e.contains("dtype") && e.contains("shape") &&
               e.contains("data_offsets"),
           where << ": header entry must be an object with exactly dtype, shape and "
                    "data_offsets, got "
                 << e.dump());
  TensorInfo ti;
  ti.name = name;
  SQ_CHECK(e["dtype"].is_string(), where << ": dtype is not a string");
  ti.dtype = st_dtype_from_name(e["dtype"].get<std::string>(), where);

  const json& sh = e["shape"];
  SQ_CHECK(sh.is_array(), where << ": shape is not a list: " << sh.dump());
  uint64_t elems = 1;
  bool overflow = false;
  for (const json& d : sh) {
    SQ_CHECK(d.is_number_integer() && (d.is_number_unsigned() || d.get<int64_t>() >= 0),
             where << ": shape must be a list of non-negative integers, got " << sh.dump());
    uint64_t v = d.get<uint64_t>();
    SQ_CHECK(v <= uint64_t(INT64_MAX), where << ": shape dimension too large: " << sh.dump());
    ti.shape.push_back(int64_t(v));
    // Element counts are int64 (numel): a running product past INT64_MAX is an overflow even
    // when a later zero dimension would bring it back (as the format's checked product says).
    overflow = overflow || __builtin_mul_overflow(elems, v, &elems) || elems > uint64_t(INT64_MAX);
  }
  uint64_t bytes = 0;
  overflow = overflow || __builtin_mul_overflow(elems, uint64_t(st_dtype_size(ti.dtype)), &bytes);

  const json& off = e["data_offsets"];
  SQ_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
               off[1].is_number_unsigned(),
           where << ": data_offsets must be [begin, end] (non-negative integers), got "
                 << off.dump());
  ti.begin = off[0].get<uint64_t>();
  ti.end = off[1].get<uint64_t>();
  SQ_CHECK(ti.begin <= ti.end, where << ": data_offsets [" << ti.begin << ", " << ti.end
                                     << "] have begin > end");
  SQ_CHECK(!overflow && bytes == ti.end - ti.begin,
           where << ": shape " << shape_str(ti.shape) << " x " << st_dtype_name(ti.dtype)
                 << " needs " << (overflow ? std::string("overflowing") : std::to_string(bytes))
                 << " bytes but data_offsets span " << (ti.end - ti.begin));
  return ti;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  SQ_CHECK(fd >= 0, "cannot open " << path << ": " << std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    SQ_FAIL("cannot stat " << path << ": " << std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    SQ_FAIL(path << " is not a regular file");
  }
  const size_t size = size_t(st.st_size);
  if (size < 8) {
    ::close(fd);
    SQ_FAIL(path << ": file is " << size << " bytes, too short for a safetensors header");
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);
  SQ_CHECK(p != MAP_FAILED, "cannot mmap " << path << ": " << std::strerror(map_errno));
  f->base_ = static_cast<uint8_t*>(p);
  f->size_ = size;  // from here the destructor unmaps, also when validation throws

  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | f->base_[i];  // little-endian u64
  SQ_CHECK(n <= size - 8, path << ": file is " << size << " bytes but its header says " << n
                                << " bytes of JSON header follow the 8-byte length");
  f->data_start_ = 8 + size_t(n);
  const uint64_t data_size = size - f->data_start_;

  json h;
  std::set<std::string> keys;  // nlohmann keeps the last of duplicate keys; the format forbids them
  std::string duplicate;
  const json::parser_callback_t on_key = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1 && parsed.is_string() &&
        !keys.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  try {
    h = json::parse(f->base_ + 8, f->base_ + 8 + n, on_key);
  } catch (const json::exception& e) {
    SQ_FAIL(path << ": header is not valid JSON (" << e.what() << ")");
  }
  SQ_CHECK(duplicate.empty(), path << ": the header names tensor " << duplicate << " twice");
  SQ_CHECK(h.is_object(), path << ": header JSON is not an object");

  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") {
      SQ_CHECK(it->is_object(), path << ": __metadata__ in the header is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        SQ_CHECK(m->is_string(), path << ": __metadata__ key " << m.key()
                                      << " is not a string: " << m->dump());
        f->metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    TensorInfo ti = parse_entry(path, it.key(), *it);
    SQ_CHECK(ti.end <= data_size, path << ": tensor " << ti.name << " data_offsets [" << ti.begin
                                       << ", " << ti.end << "] reach beyond the data area ("
                                       << data_size << " bytes)");
    f->tensors_.push_back(std::move(ti));
  }

  std::sort(f->tensors_.begin(), f->tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // As the format's own validator: the tensors tile the data area exactly, in offset order
  // (no overlap, no hole, no trailing bytes).
  uint64_t expected = 0;
  for (size_t i = 0; i < f->tensors_.size(); ++i) {
    const TensorInfo& b = f->tensors_[i];
    if (i > 0) {
      const TensorInfo& a = f->tensors_[i - 1];
      SQ_CHECK(b.begin >= a.end, path << ": tensors " << a.name << " [" << a.begin << ", " << a.end
                                      << ") and " << b.name << " [" << b.begin << ", " << b.end
                                      << ") overlap");
    }
    SQ_CHECK(b.begin == expected, path << ": bytes [" << expected << ", " << b.begin << ") of the data area before tensor "
                                       << b.name << " belong to no tensor (a hole, which the format forbids)");
    expected = b.end;
  }
  SQ_CHECK(expected == data_size, path << ": " << data_size - expected << " bytes after the last tensor belong to no "
                                       << "tensor (the format forbids trailing data)");
  for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_[f->tensors_[i].name] = i;
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (base_) ::munmap(base_, size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const TensorInfo* ti = find(name);
  SQ_CHECK(ti, "tensor " << name << " not found in " << path_);
  return *ti;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& ti = info(name);
  auto opts = at::TensorOptions().dtype(st_to_scalar(ti.dtype)).device(at::kCPU);
  uint8_t* p = base_ + data_start_ + ti.begin;
  if (ti.nbytes() == 0) return at::empty(ti.shape, opts);
  if (reinterpret_cast<uintptr_t>(p) % st_dtype_size(ti.dtype) != 0) {
    at::Tensor t = at::empty(ti.shape, opts);
    std::memcpy(t.data_ptr(), p, ti.nbytes());
    return t;
  }
  std::shared_ptr<const SafetensorsFile> keep = shared_from_this();
  return at::from_blob(p, ti.shape, [keep](void*) mutable { keep.reset(); }, opts);
}

// ---- checkpoints ------------------------------------------------------------------------
namespace {

std::vector<std::string> list_safetensors(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  SQ_CHECK(d, "cannot list " << dir << ": " << std::strerror(errno));
  const std::string ext = ".safetensors";
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > ext.size() && n.compare(n.size() - ext.size(), ext.size(), ext) == 0)
      out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir_or_file) {
  Checkpoint c;
  c.root_ = dir_or_file;
  SQ_CHECK(path_exists(dir_or_file), "checkpoint " << dir_or_file << " does not exist");

  auto add_file = [&c](const std::string& path) {
    auto f = SafetensorsFile::open(path);
    const size_t idx = c.files_.size();
    for (const TensorInfo& ti : f->tensors()) {
      auto it = c.where_.find(ti.name);
      SQ_CHECK(it == c.where_.end(), "tensor " << ti.name << " appears in both "
                                               << c.files_[it->second]->path() << " and "
                                               << path);
      c.where_[ti.name] = idx;
    }
    c.files_.push_back(std::move(f));
  };

  if (!is_directory(dir_or_file)) {
    add_file(dir_or_file);
    return c;
  }
  const std::string& dir = dir_or_file;
  const std::string index_path = path_join(dir, "model.safetensors.index.json");
  if (path_exists(index_path)) {
    json idx;
    try {
      idx = json::parse(read_file(index_path));
    } catch (const json::exception& e) {
      SQ_FAIL(index_path << ": not valid JSON (" << e.what() << ")");
    }
    SQ_CHECK(idx.is_object() && idx.contains("weight_map") && idx["weight_map"].is_object(),
             index_path << ": no weight_map object");
    std::map<std::string, std::string> weight_map;
    std::vector<std::string> shards;  // distinct, in first-seen order of the sorted names
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      SQ_CHECK(it->is_string(), index_path << ": weight_map entry " << it.key()
                                           << " is not a file name");
      const std::string shard = it->get<std::string>();
      SQ_CHECK(!shard.empty() && shard != "." && shard != ".." && shard.find('/') == std::string::npos &&
                   shard.find('\\') == std::string::npos && shard.find('\0') == std::string::npos,
               index_path << ": weight_map entry " << it.key() << " names shard \"" << shard
                          << "\", which is not a file name inside " << dir);
      weight_map[it.key()] = shard;
      if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
    }
    std::sort(shards.begin(), shards.end());
    std::map<std::string, size_t> shard_index;
    for (const std::string& s : shards) {
      shard_index[s] = c.files_.size();
      add_file(path_join(dir, s));
    }
    for (const auto& [name, shard] : weight_map) {
      SQ_CHECK(c.files_[shard_index[shard]]->find(name),
               index_path << ": tensor " << name << " is listed in shard " << shard
                          << " but that file does not contain it");
    }
    return c;
  }
  const std::string single = path_join(dir, "model.safetensors");
  if (path_exists(single)) {
    add_file(single);
    return c;
  }
  std::vector<std::string> found = list_safetensors(dir);
  SQ_CHECK(!found.empty(), "no safetensors weights in "
                               << dir
                               << " (expected model.safetensors or model.safetensors.index.json)");
  for (const std::string& n : found) add_file(path_join(dir, n));
  return c;
}

std::string Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? root_ : files_[it->second]->path();
}

Checkpoint Checkpoint::from_memory(const std::string& root,
                                   std::vector<std::pair<std::string, at::Tensor>> tensors) {
  Checkpoint c;
  c.root_ = root;
  for (auto& [name, t] : tensors) {
    SQ_CHECK(!c.memory_.count(name), "tensor " << name << " appears twice in " << root);
    TensorInfo ti;
    ti.name = name;
    ti.dtype = st_from_scalar(t.scalar_type());
    ti.shape = t.sizes().vec();
    ti.end = uint64_t(t.numel()) * st_dtype_size(ti.dtype);
    c.memory_info_[name] = ti;
    c.memory_[name] = std::move(t);
  }
  return c;
}

bool Checkpoint::has(const std::string& name) const { return where_.count(name) != 0 || memory_.count(name) != 0; }

at::Tensor Checkpoint::get(const std::string& name) const {
  if (auto m = memory_.find(name); m != memory_.end()) return m->second;
  auto it = where_.find(name);
  SQ_CHECK(it != where_.end(), "tensor " << name << " not found in " << root_);
  return files_[it->second]->tensor(name);
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  if (auto m = memory_info_.find(name); m != memory_info_.end()) return m->second;
  auto it = where_.find(name);
  SQ_CHECK(it != where_.end(), "tensor " << name << " not found in " << root_);
  return files_[it->second]->info(name);
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& kv : where_) out.push_back(kv.first);
  for (const auto& kv : memory_) out.push_back(kv.first);
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, std::string> Checkpoint::metadata() const {
  std::map<std::string, std::string> out;
  for (const auto& f : files_)
    for (const auto& kv : f->metadata()) out.insert(kv);  // first file wins on conflicts
  return out;
}

// ---- writing ----------------------------------------------------------------------------
namespace {

uint64_t tensor_nbytes(const at::Tensor& t) {
  return uint64_t(t.numel()) * uint64_t(t.element_size());
}

StDType checked_dtype(const std::string& path, const std::string& name, const at::Tensor& t) {
  try {
    return st_from_scalar(t.scalar_type());
  } catch (const Error& e) {
    SQ_FAIL("cannot write " << path << ": tensor " << name << ": " << e.what());
  }
}

bool write_all(int fd, const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= size_t(w);
  }
  return true;
}

}  // namespace

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Header first: validates names and dtypes before anything touches the disk.
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& kv : metadata) m[kv.first] = kv.second;
    h["__metadata__"] = std::move(m);
  }
  std::vector<at::Tensor> data;
  data.reserve(tensors.size());
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t0] : tensors) {
    SQ_CHECK(name != "__metadata__", "cannot write " << path << ": a tensor may not be named "
                                                     << name);
    SQ_CHECK(seen.insert(name).second,
             "cannot write " << path << ": tensor " << name << " is given twice");
    SQ_CHECK(t0.defined(), "cannot write " << path << ": tensor " << name << " is undefined");
    StDType dt = checked_dtype(path, name, t0);
    at::Tensor t = t0.contiguous().cpu();
    const uint64_t nb = tensor_nbytes(t);
    h[name] = {{"dtype", st_dtype_name(dt)},
               {"shape", t.sizes().vec()},
               {"data_offsets", {offset, offset + nb}}};
    offset += nb;
    data.push_back(std::move(t));
  }
  std::string header = h.dump();
  header.append((8 - (8 + header.size()) % 8) % 8, ' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));

  remove_stale_temps(path);
  const std::string tmp = temp_sibling(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SQ_CHECK(fd >= 0, "cannot write " << path << ": " << std::strerror(errno));
  bool ok = write_all(fd, len, 8) && write_all(fd, header.data(), header.size());
  for (size_t i = 0; ok && i < data.size(); ++i)
    ok = write_all(fd, data[i].data_ptr(), size_t(tensor_nbytes(data[i])));
  ok = ok && ::fsync(fd) == 0;
  int e = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    e = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    SQ_FAIL("cannot write " << path << ": " << std::strerror(e));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    e = errno;
    ::unlink(tmp.c_str());
    SQ_FAIL("cannot write " << path << " (rename from " << tmp << "): " << std::strerror(e));
  }
}

std::vector<std::string> write_checkpoint(const std::string& dir, const NamedTensors& tensors,
                                          const std::map<std::string, std::string>& metadata,
                                          uint64_t max_shard_bytes) {
  SQ_CHECK(is_directory(dir), "cannot write checkpoint: " << dir << " is not a directory");
  uint64_t total = 0;
  for (const auto& nt : tensors) total += tensor_nbytes(nt.second);
  const std::string index_path = path_join(dir, "model.safetensors.index.json");

  if (total <= max_shard_bytes) {
    write_safetensors(path_join(dir, "model.safetensors"), tensors, metadata);
    // A stale index would take precedence over the new file in Checkpoint::open.
    if (path_exists(index_path)) ::unlink(index_path.c_str());
    return {"model.safetensors"};
  }

  // Greedy: fill each shard in order; a tensor larger than the cap gets a shard of its own.
  std::vector<NamedTensors> shards;
  uint64_t cur = 0;
  for (const auto& nt : tensors) {
    const uint64_t nb = tensor_nbytes(nt.second);
    if (shards.empty() || (!shards.back().empty() && cur + nb > max_shard_bytes)) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(nt);
    cur += nb;
  }
  std::vector<std::string> names;
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    names.push_back(buf);
    for (const auto& nt : shards[i]) {
      SQ_CHECK(!weight_map.contains(nt.first),
               "cannot write checkpoint " << dir << ": tensor " << nt.first << " is given twice");
      weight_map[nt.first] = names.back();
    }
  }
  for (size_t i = 0; i < shards.size(); ++i)
    write_safetensors(path_join(dir, names[i]), shards[i], metadata);
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", std::move(weight_map)}};
  write_file_atomic(index_path, index.dump(2) + "\n");
  names.push_back("model.safetensors.index.json");
  return names;
}

}  // namespace sq
