// io/gguf: the GGUF container, read (mmap, every field validated before use) and written
// (streamed tensor by tensor into a temporary file, renamed when complete).
#include "sliderquant/io/gguf.h"

#include <ATen/ops/empty.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "sliderquant/core/error.h"
#include "sliderquant/core/fs.h"

namespace sq {

const char* gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: return "u8";
    case GgufValueType::I8: return "i8";
    case GgufValueType::U16: return "u16";
    case GgufValueType::I16: return "i16";
    case GgufValueType::U32: return "u32";
    case GgufValueType::I32: return "i32";
    case GgufValueType::F32: return "f32";
    case GgufValueType::BOOL: return "bool";
    case GgufValueType::STRING: return "string";
    case GgufValueType::ARRAY: return "array";
    case GgufValueType::U64: return "u64";
    case GgufValueType::I64: return "i64";
    case GgufValueType::F64: return "f64";
  }
  return "?";
}

namespace {

// Bytes of one scalar of type T (0 for string / array, which have their own encoding).
size_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    default: return 0;
  }
}

bool known_value_type(uint32_t t) { return t <= uint32_t(GgufValueType::F64); }
bool is_int_type(GgufValueType t) {
  return t == GgufValueType::U8 || t == GgufValueType::I8 || t == GgufValueType::U16 || t == GgufValueType::I16 ||
         t == GgufValueType::U32 || t == GgufValueType::I32 || t == GgufValueType::U64 || t == GgufValueType::I64;
}
bool is_float_type(GgufValueType t) { return t == GgufValueType::F32 || t == GgufValueType::F64; }

// Little-endian cursor over the mapped header with bounds checks; every error names the
// file and what was being read.
struct Cursor {
  const uint8_t* p;
  uint64_t size;
  uint64_t pos = 0;
  const std::string& path;
  std::string what;  // "key general.name", "tensor blk.0.attn_q.weight", ...

  [[noreturn]] void truncated(uint64_t need) const {
    SQ_FAIL(path << ": truncated or corrupt GGUF: reading " << what << " needs " << need << " bytes at offset " << pos
                 << " but the file is " << size << " bytes");
  }
  void need(uint64_t n) const {
    if (n > size || pos > size - n) truncated(n);
  }
  template <typename T>
  T read() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str() {
    const uint64_t n = read<uint64_t>();
    need(n);
    std::string s(reinterpret_cast<const char*>(p + pos), size_t(n));
    pos += n;
    return s;
  }
  // One scalar of type T into V (integers / bools in i, floats in f, strings in s).
  void scalar(GgufValueType t, int64_t& i, double& f, std::string& s) {
    switch (t) {
      case GgufValueType::U8: i = read<uint8_t>(); break;
      case GgufValueType::I8: i = read<int8_t>(); break;
      case GgufValueType::U16: i = read<uint16_t>(); break;
      case GgufValueType::I16: i = read<int16_t>(); break;
      case GgufValueType::U32: i = read<uint32_t>(); break;
      case GgufValueType::I32: i = read<int32_t>(); break;
      case GgufValueType::I64: i = read<int64_t>(); break;
      case GgufValueType::U64: {
        const uint64_t u = read<uint64_t>();
        SQ_CHECK(u <= uint64_t(INT64_MAX), path << ": " << what << " holds the u64 " << u << ", which is out of range");
        i = int64_t(u);
        break;
      }
      case GgufValueType::BOOL: {
        const uint8_t b = read<uint8_t>();
        SQ_CHECK(b <= 1, path << ": " << what << " holds the bool byte " << int(b) << " (must be 0 or 1)");
        i = b;
        break;
      }
      case GgufValueType::F32: f = read<float>(); break;
      case GgufValueType::F64: f = read<double>(); break;
      case GgufValueType::STRING: s = str(); break;
      default: SQ_FAIL(path << ": " << what << " has the unknown value type " << uint32_t(t));
    }
  }
};

}  // namespace

size_t GgufValue::array_size() const {
  if (!is_array()) return 0;
  return ints.size() + floats.size() + strs.size();
}

GgufValue GgufValue::u32(uint32_t v) {
  GgufValue x;
  x.type = GgufValueType::U32;
  x.i = v;
  return x;
}
GgufValue GgufValue::i32(int32_t v) {
  GgufValue x;
  x.type = GgufValueType::I32;
  x.i = v;
  return x;
}
GgufValue GgufValue::u64(uint64_t v) {
  GgufValue x;
  x.type = GgufValueType::U64;
  x.i = int64_t(v);
  return x;
}
GgufValue GgufValue::f32(float v) {
  GgufValue x;
  x.type = GgufValueType::F32;
  x.f = v;
  return x;
}
GgufValue GgufValue::boolean(bool v) {
  GgufValue x;
  x.type = GgufValueType::BOOL;
  x.i = v ? 1 : 0;
  return x;
}
GgufValue GgufValue::str(std::string v) {
  GgufValue x;
  x.type = GgufValueType::STRING;
  x.s = std::move(v);
  return x;
}
GgufValue GgufValue::str_array(std::vector<std::string> v) {
  GgufValue x;
  x.type = GgufValueType::ARRAY;
  x.elem = GgufValueType::STRING;
  x.strs = std::move(v);
  return x;
}
GgufValue GgufValue::i32_array(std::vector<int64_t> v) {
  GgufValue x;
  x.type = GgufValueType::ARRAY;
  x.elem = GgufValueType::I32;
  x.ints = std::move(v);
  return x;
}
GgufValue GgufValue::u32_array(std::vector<int64_t> v) {
  GgufValue x = i32_array(std::move(v));
  x.elem = GgufValueType::U32;
  return x;
}
GgufValue GgufValue::f32_array(std::vector<double> v) {
  GgufValue x;
  x.type = GgufValueType::ARRAY;
  x.elem = GgufValueType::F32;
  x.floats = std::move(v);
  return x;
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::vector<int64_t> GgufTensorInfo::torch_shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }

// ---- reading ---------------------------------------------------------------------------

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::shared_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  SQ_CHECK(fd >= 0, "cannot open " << path << ": " << std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    SQ_FAIL(path << " is not a regular file");
  }
  const uint64_t size = uint64_t(st.st_size);
  if (size < 24) {
    ::close(fd);
    SQ_FAIL(path << ": file is " << size << " bytes, too short for a GGUF header");
  }
  void* p = ::mmap(nullptr, size_t(size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  SQ_CHECK(p != MAP_FAILED, "cannot mmap " << path << ": " << std::strerror(map_errno));
  f->base_ = static_cast<uint8_t*>(p);
  f->size_ = size;  // from here the destructor unmaps

  Cursor c{f->base_, size, 0, path, "the magic"};
  SQ_CHECK(std::memcmp(f->base_, "GGUF", 4) == 0, path << " is not a GGUF file (no GGUF magic)");
  c.pos = 4;
  c.what = "the version";
  f->version_ = c.read<uint32_t>();
  SQ_CHECK(f->version_ == 2 || f->version_ == 3,
           path << ": GGUF version " << f->version_ << " is not supported (2 and 3 are)");
  c.what = "the tensor count";
  const uint64_t n_tensors = c.read<uint64_t>();
  c.what = "the metadata count";
  const uint64_t n_kv = c.read<uint64_t>();
  // Every entry takes at least 8 + 4 + 1 bytes: a count beyond that is corruption, not a
  // reason to allocate.
  SQ_CHECK(n_kv <= size / 13, path << ": corrupt GGUF: " << n_kv << " metadata entries cannot fit in " << size << " bytes");
  SQ_CHECK(n_tensors <= size / 24,
           path << ": corrupt GGUF: " << n_tensors << " tensors cannot fit in " << size << " bytes");

  for (uint64_t k = 0; k < n_kv; ++k) {
    c.what = "metadata key " + std::to_string(k);
    std::string key = c.str();
    c.what = "key " + key;
    SQ_CHECK(!f->kv_index_.count(key), path << ": metadata key " << key << " appears twice");
    const uint32_t t = c.read<uint32_t>();
    SQ_CHECK(known_value_type(t), path << ": key " << key << " has the unknown value type " << t);
    GgufValue v;
    v.type = GgufValueType(t);
    if (v.type != GgufValueType::ARRAY) {
      c.scalar(v.type, v.i, v.f, v.s);
    } else {
      const uint32_t et = c.read<uint32_t>();
      SQ_CHECK(known_value_type(et), path << ": key " << key << " is an array of the unknown value type " << et);
      v.elem = GgufValueType(et);
      SQ_CHECK(v.elem != GgufValueType::ARRAY, path << ": key " << key << " is an array of arrays (not supported)");
      const uint64_t n = c.read<uint64_t>();
      const uint64_t min_each = v.elem == GgufValueType::STRING ? 8 : scalar_size(v.elem);
      SQ_CHECK(n <= (size - c.pos) / min_each,
               path << ": truncated or corrupt GGUF: key " << key << " declares " << n << " elements, more than the file holds");
      int64_t iv = 0;
      double fv = 0;
      std::string sv;
      if (v.elem == GgufValueType::STRING) v.strs.reserve(size_t(n));
      else if (is_float_type(v.elem)) v.floats.reserve(size_t(n));
      else v.ints.reserve(size_t(n));
      for (uint64_t j = 0; j < n; ++j) {
        c.scalar(v.elem, iv, fv, sv);
        if (v.elem == GgufValueType::STRING) v.strs.push_back(std::move(sv));
        else if (is_float_type(v.elem)) v.floats.push_back(fv);
        else v.ints.push_back(iv);
      }
    }
    f->kv_index_[key] = f->kv_.size();
    f->kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = f->find("general.alignment")) {
    SQ_CHECK(is_int_type(a->type) && a->i > 0 && (a->i & (a->i - 1)) == 0,
             path << ": key general.alignment must be a positive power of two");
    f->alignment_ = uint64_t(a->i);
  }

  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    c.what = "tensor info " + std::to_string(k);
    t.name = c.str();
    c.what = "tensor " + t.name;
    SQ_CHECK(!f->tensor_index_.count(t.name), path << ": tensor " << t.name << " appears twice");
    const uint32_t nd = c.read<uint32_t>();
    SQ_CHECK(nd >= 1 && nd <= 4, path << ": tensor " << t.name << " has " << nd << " dimensions (1 to 4 allowed)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t ne = c.read<uint64_t>();
      SQ_CHECK(ne >= 1 && ne <= (uint64_t(1) << 40) && numel <= (uint64_t(1) << 42) / ne,
               path << ": tensor " << t.name << " has an impossible dimension " << ne);
      numel *= ne;
      t.ne.push_back(int64_t(ne));
    }
    const uint32_t type = c.read<uint32_t>();
    const GgmlTypeInfo* ti = ggml_type_info(type);
    SQ_CHECK(ti, path << ": tensor " << t.name << " has the unknown ggml type " << type);
    t.type = GgmlType(type);
    SQ_CHECK(t.ne[0] % ti->block == 0, path << ": tensor " << t.name << " has rows of " << t.ne[0]
                                             << " elements, not a multiple of the " << ti->name << " block of "
                                             << ti->block);
    t.nbytes = uint64_t(numel) / uint64_t(ti->block) * uint64_t(ti->block_bytes);
    t.offset = c.read<uint64_t>();
    SQ_CHECK(t.offset % f->alignment_ == 0, path << ": tensor " << t.name << " starts at offset " << t.offset
                                                  << ", not a multiple of the alignment " << f->alignment_);
    f->tensor_index_[t.name] = f->tensors_.size();
    f->tensors_.push_back(std::move(t));
  }
  // The data section starts at the next multiple of the alignment.
  f->data_start_ = (c.pos + f->alignment_ - 1) / f->alignment_ * f->alignment_;
  SQ_CHECK(n_tensors == 0 || f->data_start_ <= size,
           path << ": truncated GGUF: the data section would start at " << f->data_start_ << " but the file is " << size
                << " bytes");
  const uint64_t data_size = size - std::min(size, f->data_start_);
  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& t : f->tensors_) {
    SQ_CHECK(t.offset <= data_size && t.nbytes <= data_size - t.offset,
             path << ": truncated or corrupt GGUF: tensor " << t.name << " (" << t.nbytes << " bytes at data offset "
                  << t.offset << ") ends past the end of the file");
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    SQ_CHECK(by_offset[i - 1]->offset + by_offset[i - 1]->nbytes <= by_offset[i]->offset,
             path << ": corrupt GGUF: tensors " << by_offset[i - 1]->name << " and " << by_offset[i]->name << " overlap");
  return f;
}

GgufFile::~GgufFile() {
  if (base_) ::munmap(base_, size_t(size_));
}

bool GgufFile::has(const std::string& key) const { return kv_index_.count(key) > 0; }

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  SQ_CHECK(v, path_ << ": GGUF metadata key " << key << " is missing");
  return *v;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = get(key);
  SQ_CHECK(is_int_type(v.type), path_ << ": key " << key << " is a " << gguf_value_type_name(v.type)
                                      << ", an integer was expected");
  return v.i;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = get(key);
  if (is_int_type(v.type)) return double(v.i);
  SQ_CHECK(is_float_type(v.type), path_ << ": key " << key << " is a " << gguf_value_type_name(v.type)
                                        << ", a number was expected");
  return v.f;
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = get(key);
  SQ_CHECK(v.type == GgufValueType::BOOL, path_ << ": key " << key << " is a " << gguf_value_type_name(v.type)
                                                << ", a bool was expected");
  return v.i != 0;
}

const std::string& GgufFile::get_str(const std::string& key) const {
  const GgufValue& v = get(key);
  SQ_CHECK(v.type == GgufValueType::STRING, path_ << ": key " << key << " is a " << gguf_value_type_name(v.type)
                                                  << ", a string was expected");
  return v.s;
}

int64_t GgufFile::get_int(const std::string& key, int64_t dflt) const { return has(key) ? get_int(key) : dflt; }
double GgufFile::get_float(const std::string& key, double dflt) const { return has(key) ? get_float(key) : dflt; }
bool GgufFile::get_bool(const std::string& key, bool dflt) const { return has(key) ? get_bool(key) : dflt; }
std::string GgufFile::get_str(const std::string& key, const std::string& dflt) const {
  return has(key) ? get_str(key) : dflt;
}

namespace {
const GgufValue& array_of(const GgufFile& f, const std::string& key, bool (*ok)(GgufValueType), const char* what) {
  const GgufValue& v = f.get(key);
  SQ_CHECK(v.is_array() && ok(v.elem), f.path() << ": key " << key << " is not an array of " << what);
  return v;
}
}  // namespace

const std::vector<std::string>& GgufFile::get_strs(const std::string& key) const {
  return array_of(*this, key, [](GgufValueType t) { return t == GgufValueType::STRING; }, "strings").strs;
}
const std::vector<int64_t>& GgufFile::get_ints(const std::string& key) const {
  return array_of(*this, key, [](GgufValueType t) { return is_int_type(t) || t == GgufValueType::BOOL; }, "integers")
      .ints;
}
const std::vector<double>& GgufFile::get_floats(const std::string& key) const {
  return array_of(*this, key, is_float_type, "floats").floats;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor_info(const std::string& name) const {
  const GgufTensorInfo* t = find_tensor(name);
  SQ_CHECK(t, path_ << ": tensor " << name << " is missing");
  return *t;
}

at::Tensor GgufFile::dequantize(const std::string& name) const {
  const GgufTensorInfo& t = tensor_info(name);
  const GgmlTypeInfo& ti = ggml_type_info(t.type);
  SQ_CHECK(ti.readable, path_ << ": tensor " << name << " has the ggml type " << ti.name
                              << ", which this version cannot read");
  at::Tensor out = at::empty(t.torch_shape(), at::kFloat);
  ggml_dequantize(t.type, tensor_data(t), out.data_ptr<float>(), t.numel());
  return out;
}

bool is_gguf_file(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return false;
  char magic[4] = {0, 0, 0, 0};
  const size_t n = std::fread(magic, 1, 4, fp);
  std::fclose(fp);
  return n == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

// ---- writing ---------------------------------------------------------------------------

void GgufWriter::set(const std::string& key, GgufValue v) {
  for (auto& kv : kv_)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  kv_.emplace_back(key, std::move(v));
}

bool GgufWriter::has(const std::string& key) const {
  for (const auto& kv : kv_)
    if (kv.first == key) return true;
  return false;
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type, Produce produce) {
  for (const Pending& p : tensors_) SQ_CHECK(p.info.name != name, "GGUF tensor " << name << " added twice");
  SQ_CHECK(!ne.empty() && ne.size() <= 4, "GGUF tensor " << name << " must have 1 to 4 dimensions");
  const GgmlTypeInfo& ti = ggml_type_info(type);
  for (int64_t d : ne) SQ_CHECK(d >= 1, "GGUF tensor " << name << " has an empty dimension");
  SQ_CHECK(ne[0] % ti.block == 0, "GGUF tensor " << name << " has rows of " << ne[0] << " elements, not a multiple of the "
                                                 << ti.name << " block of " << ti.block);
  Pending p;
  p.info.name = name;
  p.info.ne = std::move(ne);
  p.info.type = type;
  p.info.nbytes = ggml_nbytes(type, p.info.numel());
  p.produce = std::move(produce);
  tensors_.push_back(std::move(p));
}

namespace {

struct Out {
  std::string buf;
  template <typename T>
  void put(T v) {
    buf.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    buf += s;
  }
  void scalar(GgufValueType t, int64_t i, double f, const std::string& s, const std::string& key) {
    switch (t) {
      case GgufValueType::U8: put<uint8_t>(uint8_t(i)); break;
      case GgufValueType::I8: put<int8_t>(int8_t(i)); break;
      case GgufValueType::U16: put<uint16_t>(uint16_t(i)); break;
      case GgufValueType::I16: put<int16_t>(int16_t(i)); break;
      case GgufValueType::U32: put<uint32_t>(uint32_t(i)); break;
      case GgufValueType::I32: put<int32_t>(int32_t(i)); break;
      case GgufValueType::U64: put<uint64_t>(uint64_t(i)); break;
      case GgufValueType::I64: put<int64_t>(i); break;
      case GgufValueType::BOOL: put<uint8_t>(i ? 1 : 0); break;
      case GgufValueType::F32: put<float>(float(f)); break;
      case GgufValueType::F64: put<double>(f); break;
      case GgufValueType::STRING: str(s); break;
      default: SQ_FAIL("GGUF key " << key << ": cannot write a value of type " << gguf_value_type_name(t));
    }
  }
};

bool write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
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

void GgufWriter::write(const std::string& path,
                       const std::function<void(size_t, size_t, const std::string&)>& on_tensor) const {
  // The header (metadata and tensor infos with their offsets) is complete before the file
  // is opened: a bad value fails before anything touches the disk.
  Out h;
  h.buf = "GGUF";
  h.put<uint32_t>(3);
  h.put<uint64_t>(tensors_.size());
  std::vector<std::pair<std::string, GgufValue>> kv = kv_;
  bool has_alignment = false;
  for (const auto& e : kv) has_alignment |= e.first == "general.alignment";
  if (!has_alignment && alignment_ != 32) kv.emplace_back("general.alignment", GgufValue::u32(uint32_t(alignment_)));
  h.put<uint64_t>(kv.size());
  for (const auto& [key, v] : kv) {
    h.str(key);
    h.put<uint32_t>(uint32_t(v.type));
    if (!v.is_array()) {
      h.scalar(v.type, v.i, v.f, v.s, key);
      continue;
    }
    h.put<uint32_t>(uint32_t(v.elem));
    h.put<uint64_t>(v.array_size());
    if (v.elem == GgufValueType::STRING)
      for (const std::string& s : v.strs) h.str(s);
    else if (is_float_type(v.elem))
      for (double x : v.floats) h.scalar(v.elem, 0, x, "", key);
    else
      for (int64_t x : v.ints) h.scalar(v.elem, x, 0, "", key);
  }
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const Pending& p : tensors_) {
    h.str(p.info.name);
    h.put<uint32_t>(uint32_t(p.info.ne.size()));
    for (int64_t d : p.info.ne) h.put<uint64_t>(uint64_t(d));
    h.put<uint32_t>(uint32_t(p.info.type));
    h.put<uint64_t>(offset);
    offsets.push_back(offset);
    offset += (p.info.nbytes + alignment_ - 1) / alignment_ * alignment_;
  }
  h.buf.append((alignment_ - h.buf.size() % alignment_) % alignment_, '\0');

  remove_stale_temps(path);
  const std::string tmp = temp_sibling(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SQ_CHECK(fd >= 0, "cannot write " << path << ": " << std::strerror(errno));
  auto fail = [&](const std::string& msg) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(msg);
  };
  if (!write_all(fd, h.buf.data(), h.buf.size())) fail("cannot write " + path + ": " + std::strerror(errno));
  std::vector<uint8_t> bytes;
  const std::vector<uint8_t> pad(size_t(alignment_), 0);
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Pending& p = tensors_[i];
    if (on_tensor) on_tensor(i, tensors_.size(), p.info.name);
    bytes.clear();
    try {
      p.produce(bytes);
    } catch (const std::exception& e) {
      fail(e.what());
    }
    if (bytes.size() != p.info.nbytes)
      fail("GGUF tensor " + p.info.name + ": " + std::to_string(bytes.size()) + " bytes produced, " +
           std::to_string(p.info.nbytes) + " expected for " + ggml_type_info(p.info.type).name);
    const size_t padn = size_t((alignment_ - p.info.nbytes % alignment_) % alignment_);
    if (!write_all(fd, bytes.data(), bytes.size()) || !write_all(fd, pad.data(), padn))
      fail("cannot write " + path + ": " + std::strerror(errno));
  }
  if (::fsync(fd) != 0) fail("cannot write " + path + ": " + std::strerror(errno));
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    SQ_FAIL("cannot write " << path << ": " << std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    SQ_FAIL("cannot write " << path << " (rename from " << tmp << "): " << std::strerror(e));
  }
}

}  // namespace sq
