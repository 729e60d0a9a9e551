// io/gguf: the GGUF container (llama.cpp's model file), read and written. Knows the file's
// grammar, not what the keys or tensor names mean (formats/gguf.cpp and data/ do).
//
// Layout (v2 and v3; little-endian): "GGUF", u32 version, u64 tensor_count, u64 kv_count;
// kv_count entries (string key, u32 value type, value); tensor_count infos (string name,
// u32 n_dims, u64 ne[n_dims] (ne[0] varies fastest), u32 ggml type, u64 offset relative to
// the data section); padding to general.alignment (default 32); the data section, each
// tensor at an offset that is a multiple of the alignment. Strings are u64 length + bytes;
// arrays are u32 element type + u64 count + elements (arrays of arrays are refused).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sliderquant/io/ggml_types.h"

namespace sq {

enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);  // "u32", "string", "array", ...

// One metadata value. Scalars: integers in `i` (u64 above INT64_MAX is refused on read),
// floats in `f`, bools in `i` (0/1), strings in `s`. Arrays: `elem` is the element type and
// exactly one of `ints` (integer and bool elements), `floats`, `strs` holds the elements.
struct GgufValue {
  GgufValueType type = GgufValueType::U32;
  GgufValueType elem = GgufValueType::U32;  // arrays only
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strs;

  bool is_array() const { return type == GgufValueType::ARRAY; }
  size_t array_size() const;  // 0 for scalars

  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue str(std::string v);
  static GgufValue str_array(std::vector<std::string> v);
  static GgufValue i32_array(std::vector<int64_t> v);
  static GgufValue u32_array(std::vector<int64_t> v);
  static GgufValue f32_array(std::vector<double> v);
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the fastest-varying (row length)
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t nbytes = 0;  // ggml_nbytes(type, numel)
  int64_t numel() const;
  // PyTorch order (ne reversed): a [out, in] linear is stored with ne = {in, out}.
  std::vector<int64_t> torch_shape() const;
};

// A GGUF file, memory-mapped read-only. open() validates everything before returning: magic,
// version (2 or 3), every key and value (types known, lengths inside the file, no duplicate
// keys), every tensor info (known type, dims 1..4, positive sizes, rows a multiple of the
// block, offset aligned, data inside the file, no two tensors overlapping, no duplicate
// names). Errors are one line naming the file and the key or tensor.
class GgufFile {
 public:
  static std::shared_ptr<GgufFile> open(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return size_; }

  // Metadata, in file order.
  const std::vector<std::pair<std::string, GgufValue>>& kv() const { return kv_; }
  bool has(const std::string& key) const;
  const GgufValue* find(const std::string& key) const;  // nullptr when absent
  const GgufValue& get(const std::string& key) const;   // throws naming file and key
  // Typed accessors: throw naming file and key when absent or of another type. get_int
  // takes any integer type, get_float any float or integer, get_bool a bool.
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_str(const std::string& key) const;
  // The same with a default when the key is absent (still throws on a wrong type).
  int64_t get_int(const std::string& key, int64_t dflt) const;
  double get_float(const std::string& key, double dflt) const;
  bool get_bool(const std::string& key, bool dflt) const;
  std::string get_str(const std::string& key, const std::string& dflt) const;
  // Arrays: throw unless the key holds an array of strings / integers / floats.
  const std::vector<std::string>& get_strs(const std::string& key) const;
  const std::vector<int64_t>& get_ints(const std::string& key) const;
  const std::vector<double>& get_floats(const std::string& key) const;

  // Tensors, in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;  // nullptr when absent
  const GgufTensorInfo& tensor_info(const std::string& name) const;  // throws naming file
  const uint8_t* tensor_data(const GgufTensorInfo& t) const { return base_ + data_start_ + t.offset; }
  // The tensor as float32 in PyTorch order (a copy; F32 too). Throws naming file, tensor and
  // type when the type is not readable (IQ types...).
  at::Tensor dequantize(const std::string& name) const;

 private:
  GgufFile() = default;
  std::string path_;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_start_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Writes a GGUF v3 file: metadata in the order set, then tensors in the order added, each at
// an aligned offset. Tensor bytes are produced one tensor at a time by a callback (so a
// model is never held twice in memory) and checked against the declared size. write() goes
// to PATH.tmp.<pid> and renames it to PATH when complete; on any error the temporary file is
// removed and PATH is untouched.
class GgufWriter {
 public:
  using Produce = std::function<void(std::vector<uint8_t>& bytes)>;
  explicit GgufWriter(uint64_t alignment = 32) : alignment_(alignment) {}
  void set(const std::string& key, GgufValue v);  // replaces an existing key in place
  bool has(const std::string& key) const;
  // NE in ggml order (see GgufTensorInfo). Throws on a duplicate name or a row that is not a
  // multiple of the type's block.
  void add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type, Produce produce);
  // on_tensor(i, n, name) is called before tensor i of n is produced (progress).
  void write(const std::string& path,
             const std::function<void(size_t, size_t, const std::string&)>& on_tensor = {}) const;

 private:
  struct Pending {
    GgufTensorInfo info;
    Produce produce;
  };
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Pending> tensors_;
};

// True when PATH is a regular file that starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

}  // namespace sq
