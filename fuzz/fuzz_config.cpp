// libFuzzer target: config.json parsing (sq::parse_model_config, src/model/config.cpp and the
// family parsers of src/arch/). On an accepted config it also does what `sliderquant inspect`
// does with one (param_count, q_dim, kv_dim), and checks that the config survives a round
// trip through model_config_json (the writer of synthetic checkpoints): the re-parsed config
// must be accepted and have the same shapes. Set SQ_FUZZ_NO_ROUNDTRIP=1 to skip that check.
// sq::Error is the expected rejection; any other exception, crash or UB is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <typeinfo>

#include "fuzz_common.h"
#include "sliderquant/core/error.h"
#include "sliderquant/model/arch.h"

namespace {

bool g_roundtrip = true;

const uint8_t* g_data = nullptr;  // the current input (for soft findings)
size_t g_size = 0;

void finding(const std::string& what, const std::string& detail) {
  sqfuzz::soft_finding(what, detail, g_data, g_size);
}

void check_roundtrip(const sq::ModelConfig& c) {
  const std::string text = sq::model_config_json(c);
  sq::ModelConfig d;
  try {
    d = sq::parse_model_config(text, "config.json (round trip)");
  } catch (const sq::Error& e) {
    finding("an accepted config.json does not survive model_config_json + parse_model_config", e.what());
    return;
  }
  if (d.architecture != c.architecture || d.family != c.family || d.hidden_size != c.hidden_size ||
      d.intermediate_size != c.intermediate_size || d.num_layers != c.num_layers || d.num_heads != c.num_heads ||
      d.num_kv_heads != c.num_kv_heads || d.head_dim != c.head_dim || d.vocab_size != c.vocab_size ||
      d.sliding_window != c.sliding_window || d.qk_norm != c.qk_norm || d.qkv_bias != c.qkv_bias ||
      d.rope_scaling.has_value() != c.rope_scaling.has_value())
    finding("config changed in a model_config_json round trip", text);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_roundtrip = !sqfuzz::env_flag("SQ_FUZZ_NO_ROUNDTRIP");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g_data = data;
  g_size = size;
  const std::string text(reinterpret_cast<const char*>(data), size);
  return sqfuzz::run_input(data, size, [&] {
    sq::ModelConfig c = sq::parse_model_config(text, "config.json");
    volatile int64_t sink = c.param_count() + c.q_dim() + c.kv_dim();
    (void)sink;
    if (g_roundtrip) check_roundtrip(c);
  });
}
