// io/safetensors: the safetensors checkpoint format, read (mmap, lazy, sharded) and
// written (8-byte aligned header, __metadata__, temp file + rename, optional sharding).
// Knows nothing of architectures: names are opaque strings.
// Format: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
// then the data area; offsets are relative to the data area's start.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sq {

enum class StDType { F32, F16, BF16, F64, I8, U8, I16, I32, I64, BOOL };

const char* st_dtype_name(StDType t);          // "F32", ...
StDType st_dtype_from_name(const std::string& s, const std::string& where);  // throws
size_t st_dtype_size(StDType t);
c10::ScalarType st_to_scalar(StDType t);
StDType st_from_scalar(c10::ScalarType t);      // throws for unsupported types

struct TensorInfo {
  std::string name;
  StDType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets in the data area
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// One .safetensors file, memory-mapped (private, copy-on-write: tensors may be modified
// in memory without touching the file). Validates the whole header on open.
class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // sorted by offset
  const TensorInfo* find(const std::string& name) const;               // nullptr if absent
  const TensorInfo& info(const std::string& name) const;
  std::string file_of(const std::string& name) const;   // the file holding NAME (root for memory)               // throws if absent
  // Zero-copy CPU view of the mapped bytes (copied only when misaligned for its dtype).
  // The view keeps the mapping alive.
  at::Tensor tensor(const std::string& name) const;
  const uint8_t* data_area() const { return base_ + data_start_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  size_t data_start_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
};

// A model's weights: a directory with model.safetensors, or with
// model.safetensors.index.json naming the shard of every tensor, or a single file path.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& dir_or_file);
  // Tensors already in memory (a converted file such as a GGUF): ROOT names them in errors.
  static Checkpoint from_memory(const std::string& root, std::vector<std::pair<std::string, at::Tensor>> tensors);
  bool has(const std::string& name) const;
  at::Tensor get(const std::string& name) const;        // throws naming tensor and dir
  const TensorInfo& info(const std::string& name) const;
  std::string file_of(const std::string& name) const;   // the file holding NAME (root for memory)
  std::vector<std::string> names() const;                // sorted
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
  const std::string& root() const { return root_; }
  std::map<std::string, std::string> metadata() const;  // merged __metadata__ of all files

 private:
  std::string root_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
  std::map<std::string, at::Tensor> memory_;     // from_memory: the tensors themselves
  std::map<std::string, TensorInfo> memory_info_;
};

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Writes one file atomically (temp file in the same directory, then rename).
// Tensors are written contiguous, on CPU, in their own dtype, in the given order.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes model.safetensors when the total is <= max_shard_bytes, else
// model-00001-of-0000N.safetensors ... plus model.safetensors.index.json
// ({"metadata": {"total_size": ...}, "weight_map": {...}}). Each file atomic.
// Returns the file names written (relative to dir).
std::vector<std::string> write_checkpoint(const std::string& dir, const NamedTensors& tensors,
                                          const std::map<std::string, std::string>& metadata,
                                          uint64_t max_shard_bytes);

}  // namespace sq
