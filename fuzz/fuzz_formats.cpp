// libFuzzer target: model directories as the format registry reads them (src/formats/):
// detection, then `read` and `describe` of the detected row: native (quantization_config.json
// + packed codes), GPTQ (qweight / qzeros / scales / g_idx, config.json's or
// quantize_config.json's quantization_config), compressed-tensors (pack-quantized and
// friends) and plain HF. GGUF has its own target (fuzz_gguf).
//
// Input: up to five files separated by "\n--FILE--\n", in this order:
//   config.json, model.safetensors, quantization_config.json, quantize_config.json,
//   model.safetensors.index.json
// A missing or empty section means the file is absent.
//
// On an accepted model it also checks what `eval` relies on: every linear's effective weight
// (the dequantized codes of a packed linear) is a 2-D [out, in] tensor of the config's sizes
// with only finite values, and so are the embedding and the final norm; `describe` answers.
// sq::Error is the expected rejection; any other exception, a crash, UB, a leak, or an
// accepted model that breaks those checks is a finding (fuzz_common.h).
#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "sliderquant/core/error.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/model/model.h"

namespace {

const char* const kNames[] = {"config.json", "model.safetensors", "quantization_config.json", "quantize_config.json",
                              "model.safetensors.index.json"};
constexpr size_t kFiles = sizeof(kNames) / sizeof(kNames[0]);

std::string g_dir;
const uint8_t* g_data = nullptr;
size_t g_size = 0;

void finding(const std::string& what, const std::string& detail) {
  sqfuzz::soft_finding(what, detail, g_data, g_size);
}

void clear_dir() {
  for (const char* n : kNames) ::unlink((g_dir + "/" + n).c_str());
}

// Splits the input into the files (an empty section writes none); returns the sections seen.
size_t write_files(const uint8_t* data, size_t size) {
  static const char kMarker[] = "\n--FILE--\n";
  const size_t mlen = sizeof(kMarker) - 1;
  size_t i = 0;
  const uint8_t* p = data;
  const uint8_t* end = data + size;
  while (i < kFiles) {
    const uint8_t* m = static_cast<const uint8_t*>(memmem(p, size_t(end - p), kMarker, mlen));
    const uint8_t* stop = m ? m : end;
    if (stop > p) sqfuzz::write_bytes(g_dir + "/" + kNames[i], p, size_t(stop - p));
    ++i;
    if (!m) break;
    p = m + mlen;
  }
  return i;
}

const char* g_format = "";  // the row that read the current input

void check_tensor(const at::Tensor& t, const std::string& name, int64_t rows, int64_t cols) {
  const std::string what = std::string(g_format) + ": " + name;
  if (!t.defined()) return finding("an accepted model has an undefined tensor", what);
  if (t.dim() != 2 || (rows >= 0 && t.size(0) != rows) || (cols >= 0 && t.size(1) != cols))
    return finding("an accepted model's tensor has the wrong shape",
                   what + " " + std::to_string(t.dim()) + "-D, expected [" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "]");
  if (t.numel() > 0 && !at::isfinite(t.to(at::kFloat)).all().item<bool>())
    finding("an accepted model's tensor is not finite", what);
}

void check_model(const sq::Model& m) {
  const int64_t h = m.config.hidden_size;
  check_tensor(m.embed, "embed", m.config.vocab_size, h);
  if (m.final_norm.defined() && m.final_norm.numel() > 0 && !at::isfinite(m.final_norm.to(at::kFloat)).all().item<bool>())
    finding("an accepted model's tensor is not finite", std::string(g_format) + ": final_norm");
  check_tensor(m.lm_head.effective_weight(), "lm_head", m.config.vocab_size, h);
  for (const sq::Block& b : m.blocks)
    for (const sq::Linear* l : b.linears()) {
      if (!l->weight.defined() && !l->override_) continue;  // a slot this block does not use
      const at::Tensor w = l->effective_weight();
      int64_t out = -1, in = -1;
      if (l->weight.defined() && l->weight.dim() == 2) out = l->weight.size(0), in = l->weight.size(1);
      check_tensor(w, l->name, out, in);
      if (l->override_) (void)l->override_->describe();
    }
}

void one_input(const uint8_t* data, size_t size) {
  clear_dir();
  write_files(data, size);
  const sq::ModelFormat* f = sq::try_detect_format(g_dir);
  if (f == nullptr) return sqfuzz::rejected(sq::Error("no format"));
  g_format = f->name;
  sq::Model m = f->read(g_dir);
  check_model(m);
  const nlohmann::json d = f->describe(g_dir);
  if (!d.is_object() || !d.contains("format")) finding("describe gave no \"format\"", f->name);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = sqfuzz::scratch_dir("formats");
  std::atexit([] {
    clear_dir();
    ::rmdir(g_dir.c_str());
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g_data = data;
  g_size = size;
  return sqfuzz::run_input(data, size, [&] { one_input(data, size); });
}
