// libFuzzer target: the safetensors reader (src/io/safetensors.cpp).
//
// The first input byte picks the mode (its low bit):
//   even: the rest of the input is one .safetensors file: SafetensorsFile::open, then every
//         tensor's info and every tensor materialized (f->tensor(name)) and read byte by byte.
//   odd:  the rest is "<model.safetensors.index.json>\n--SHARD--\n<shard bytes>": a sharded
//         checkpoint directory holding the index and one shard named
//         model-00001-of-00001.safetensors, opened with Checkpoint::open(dir), then every
//         name's info and tensor.
// sq::Error is the expected rejection. Any other exception, a crash, a leak, UB, or a tensor
// that disagrees with its own TensorInfo is a finding (fuzz_common.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <typeinfo>

#include <ATen/ATen.h>

#include "sliderquant/core/error.h"
#include "sliderquant/io/safetensors.h"
#include "fuzz_common.h"

namespace {

std::string g_dir;  // per-process scratch directory
const uint8_t* g_data = nullptr;  // the current input (for soft findings)
size_t g_size = 0;

using sqfuzz::write_bytes;

void finding(const char* what, const std::string& detail) { sqfuzz::soft_finding(what, detail, g_data, g_size); }

// Reads every byte of a materialized tensor; checks it against the header's description.
uint64_t touch(const at::Tensor& t, const sq::TensorInfo& ti) {
  if (t.sizes().vec() != ti.shape) return finding("tensor shape differs from its TensorInfo", ti.name), 0;
  if (t.scalar_type() != sq::st_to_scalar(ti.dtype))
    return finding("tensor dtype differs from its TensorInfo", ti.name), 0;
  const uint64_t nbytes = uint64_t(t.numel()) * t.element_size();
  if (nbytes != ti.nbytes()) return finding("tensor byte size differs from data_offsets", ti.name), 0;
  if (!t.is_contiguous()) return finding("tensor view is not contiguous", ti.name), 0;
  const volatile uint8_t* p = static_cast<const uint8_t*>(t.data_ptr());
  uint64_t sum = 0;
  for (uint64_t i = 0; i < nbytes; ++i) sum += p[i];
  return sum;
}

void use_info(const sq::TensorInfo& ti) {
  volatile int64_t n = ti.numel();
  volatile uint64_t b = ti.nbytes();
  (void)n;
  (void)b;
  (void)sq::st_dtype_name(ti.dtype);
}

void one_file(const uint8_t* data, size_t size) {
  const std::string path = g_dir + "/single.safetensors";
  write_bytes(path, data, size);
  auto f = sq::SafetensorsFile::open(path);
  for (const auto& [k, v] : f->metadata()) (void)(k.size() + v.size());
  for (const sq::TensorInfo& ti : f->tensors()) {
    const sq::TensorInfo& again = f->info(ti.name);
    if (&again != f->find(ti.name)) finding("info() and find() disagree", ti.name);
    (void)touch(f->tensor(ti.name), ti);
    use_info(ti);
  }
}

void sharded(const uint8_t* data, size_t size) {
  static const char kMarker[] = "\n--SHARD--\n";
  const size_t mlen = sizeof(kMarker) - 1;
  const uint8_t* m = static_cast<const uint8_t*>(memmem(data, size, kMarker, mlen));
  const size_t idx_len = m ? size_t(m - data) : size;
  const uint8_t* shard = m ? m + mlen : data + size;
  const size_t shard_len = m ? size - idx_len - mlen : 0;
  const std::string dir = g_dir + "/sharded";
  write_bytes(dir + "/model.safetensors.index.json", data, idx_len);
  write_bytes(dir + "/model-00001-of-00001.safetensors", shard, shard_len);
  sq::Checkpoint c = sq::Checkpoint::open(dir);
  (void)c.metadata();
  for (const std::string& name : c.names()) {
    if (!c.has(name)) finding("names() lists a tensor has() denies", name);
    const sq::TensorInfo& ti = c.info(name);
    (void)c.file_of(name);
    (void)touch(c.get(name), ti);
    use_info(ti);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = sqfuzz::scratch_dir("safetensors");
  if (::mkdir((g_dir + "/sharded").c_str(), 0700) != 0) { std::perror("mkdir"); std::abort(); }
  std::atexit([] {
    ::unlink((g_dir + "/single.safetensors").c_str());
    ::unlink((g_dir + "/sharded/model.safetensors.index.json").c_str());
    ::unlink((g_dir + "/sharded/model-00001-of-00001.safetensors").c_str());
    ::rmdir((g_dir + "/sharded").c_str());
    ::rmdir(g_dir.c_str());
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  g_data = data;
  g_size = size;
  return sqfuzz::run_input(data, size, [&] {
    if ((data[0] & 1) == 0) one_file(data + 1, size - 1);
    else sharded(data + 1, size - 1);
  });
}
