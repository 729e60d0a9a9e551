// Tests of io/gguf (the container) and formats/gguf (the model format): every metadata type
// round trips through GgufWriter and GgufFile; alignment; corrupt and truncated files fail
// with one line naming the file and what is wrong; the stories260K model written as GGUF reads
// back exactly; q/k rows are permuted on disk as llama.cpp expects; what GGUF cannot store is
// refused before anything is written. (llama.cpp itself: tests/gguf/test_gguf_interop.py.)
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/io/gguf.h"
#include "sliderquant/model/quantized_weight.h"
#include "sliderquant/quant/rtn.h"

using namespace sq;
namespace fs = std::filesystem;

namespace {

std::string tmp_path(const std::string& name) {
  return ::testing::TempDir() + "sq_gguf_" + std::to_string(::getpid()) + "_" + name;
}

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void spit(const std::string& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

std::string small_file() {
  const std::string p = tmp_path("small.gguf");
  GgufWriter w;
  w.set("general.architecture", GgufValue::str("llama"));
  w.set("a.u32", GgufValue::u32(4000000000u));
  w.set("a.i32", GgufValue::i32(-7));
  w.set("a.u64", GgufValue::u64(uint64_t(1) << 40));
  w.set("a.f32", GgufValue::f32(0.25f));
  w.set("a.bool", GgufValue::boolean(true));
  w.set("a.strs", GgufValue::str_array({"x", "", "ünï"}));
  w.set("a.ints", GgufValue::i32_array({1, -2, 3}));
  w.set("a.floats", GgufValue::f32_array({0.5, -1.5}));
  at::Tensor t = at::arange(64, at::kFloat).reshape({2, 32});
  w.add_tensor("t.f32", {32, 2}, GgmlType::F32, [t](std::vector<uint8_t>& b) {
    b.assign(reinterpret_cast<const uint8_t*>(t.data_ptr()), reinterpret_cast<const uint8_t*>(t.data_ptr()) + 256);
  });
  w.add_tensor("t.q8", {32, 2}, GgmlType::Q8_0, [t](std::vector<uint8_t>& b) {
    b.resize(2 * 34);
    for (int r = 0; r < 2; ++r) ggml_quantize(GgmlType::Q8_0, t.data_ptr<float>() + 32 * r, b.data() + 34 * r, 32);
  });
  w.write(p);
  return p;
}

}  // namespace

TEST(Gguf, MetadataAndTensorsRoundTrip) {
  const std::string p = small_file();
  auto f = GgufFile::open(p);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->get_str("general.architecture"), "llama");
  EXPECT_EQ(f->get_int("a.u32"), 4000000000LL);
  EXPECT_EQ(f->get_int("a.i32"), -7);
  EXPECT_EQ(f->get_int("a.u64"), int64_t(1) << 40);
  EXPECT_EQ(f->get_float("a.f32"), 0.25);
  EXPECT_TRUE(f->get_bool("a.bool"));
  EXPECT_EQ(f->get_strs("a.strs"), (std::vector<std::string>{"x", "", "ünï"}));
  EXPECT_EQ(f->get_ints("a.ints"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f->get_floats("a.floats"), (std::vector<double>{0.5, -1.5}));
  EXPECT_EQ(f->get_int("missing", 5), 5);
  EXPECT_THROW(f->get_str("a.u32"), Error);
  EXPECT_THROW(f->get_int("missing"), Error);
  ASSERT_EQ(f->tensors().size(), 2u);
  for (const GgufTensorInfo& t : f->tensors()) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  at::Tensor a = f->dequantize("t.f32");
  EXPECT_TRUE(a.equal(at::arange(64, at::kFloat).reshape({2, 32})));
  at::Tensor q = f->dequantize("t.q8");
  EXPECT_EQ(q.sizes().vec(), (std::vector<int64_t>{2, 32}));
  EXPECT_LE((q - a).abs().max().item<float>(), 63.f / 127.f / 2.f * 1.001f);  // Q8_0 of 32..63: half a step of 63/127
  EXPECT_TRUE(is_gguf_file(p));
  EXPECT_FALSE(is_gguf_file(std::string(SQ_FIXTURES_DIR) + "/stories260K/hf/config.json"));
}

TEST(Gguf, CorruptFilesFailWithOneLineNamingTheFile) {
  const std::string good = slurp(small_file());
  struct Case {
    const char* name;
    std::string bytes;
    const char* expect;  // a piece of the message
  };
  std::string huge_kv = good;
  const uint64_t big = uint64_t(1) << 60;
  std::memcpy(&huge_kv[16], &big, 8);
  std::string bad_type = good;  // the first key's value type: right after "general.architecture"
  const uint32_t ninety_nine = 99;
  std::memcpy(&bad_type[24 + 8 + std::strlen("general.architecture")], &ninety_nine, 4);
  std::string bad_version = good;
  const uint32_t seven = 7;
  std::memcpy(&bad_version[4], &seven, 4);
  const std::vector<Case> cases = {
      {"truncated_half", good.substr(0, good.size() / 2), "truncated"},
      {"truncated_data", good.substr(0, good.size() - 40), "ends past the end of the file"},
      {"short", good.substr(0, 10), "too short"},
      {"magic", "GGUX" + good.substr(4), "not a GGUF file"},
      {"version", bad_version, "version 7"},
      {"huge_kv", huge_kv, "cannot fit"},
      {"value_type", bad_type, "unknown value type 99"},
  };
  for (const Case& c : cases) {
    const std::string p = tmp_path(std::string(c.name) + ".gguf");
    spit(p, c.bytes);
    try {
      GgufFile::open(p);
      ADD_FAILURE() << c.name << " was accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(p), std::string::npos) << c.name << ": " << msg;
      EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << c.name << ": " << msg;
    }
  }
}

TEST(Gguf, WriterFailsBeforeTouchingTheDisk) {
  GgufWriter w;
  EXPECT_THROW(w.add_tensor("bad", {33, 2}, GgmlType::Q4_0, [](std::vector<uint8_t>&) {}), Error);
  w.add_tensor("t", {32}, GgmlType::F32, [](std::vector<uint8_t>& b) { b.resize(7); });  // wrong size
  const std::string p = tmp_path("short_tensor.gguf");
  EXPECT_THROW(w.write(p), Error);
  EXPECT_FALSE(fs::exists(p));
  for (const auto& e : fs::directory_iterator(::testing::TempDir()))
    EXPECT_EQ(e.path().string().find("short_tensor.gguf.tmp"), std::string::npos) << e.path();
}

TEST(GgufFormat, Stories260KRoundTripsExactlyAndPermutesQK) {
  const std::string src = std::string(SQ_FIXTURES_DIR) + "/stories260K/hf";
  Model m = load_any_model(src);
  const std::string p = tmp_path("stories.gguf");
  FormatWriteOptions wo;
  wo.force = true;
  find_format("gguf").write(m, {}, {}, p, wo);
  EXPECT_EQ(detect_format(p).name, std::string("gguf"));
  Model r = load_any_model(p);
  EXPECT_TRUE(r.embed.equal(m.embed));
  for (size_t i = 0; i < m.blocks.size(); ++i)
    for (int j = 0; j < int(m.blocks[i].slots.size()); ++j)
      EXPECT_TRUE(r.blocks[i].slots[size_t(j)].weight.equal(m.blocks[i].slots[size_t(j)].weight.to(at::kFloat)))
          << i << "." << j;
  // On disk q is stored with llama.cpp's RoPE interleave (rows [h, 2, d/2] -> [h, d/2, 2]).
  auto f = GgufFile::open(p);
  at::Tensor q_disk = f->dequantize("blk.0.attn_q.weight");
  at::Tensor q = m.blocks[0].linear(Role::Q).weight.to(at::kFloat);
  const int64_t d = m.config.head_dim;
  EXPECT_TRUE(q_disk[1].equal(q[d / 2]));  // row 1 of head 0 is the first row of the second half
  EXPECT_TRUE(q_disk[0].equal(q[0]));
  EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), m.config.num_kv_heads);
  EXPECT_EQ(f->get_str("tokenizer.ggml.model"), "llama");
}

TEST(GgufFormat, RefusesWhatItCannotStoreBeforeWriting) {
  const std::string src = std::string(SQ_FIXTURES_DIR) + "/stories260K/hf";
  Model m = load_any_model(src);
  const Linear& l = m.blocks[0].linear(Role::Q);
  std::map<std::string, QTensor> qs;
  qs[l.name] = rtn_quantize(l.weight.to(at::kFloat), QFormat::parse("w4"));
  const std::string p = tmp_path("refused.gguf");
  FormatWriteOptions wo;
  wo.force = true;
  try {
    find_format("gguf").write(m, qs, {}, p, wo);
    ADD_FAILURE() << "a per-channel linear was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(l.name), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("groups of 32"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(p));
  // With a re-quantization type it is written (lossy, reported).
  nlohmann::json rep;
  wo.requant_type = "q8_0";
  wo.report = &rep;
  find_format("gguf").write(m, qs, {}, p, wo);
  EXPECT_GE(rep["requantized"].get<int64_t>(), 1);
  bool seen = false;
  for (const auto& t : rep["tensors"])
    if (t["source"] == l.name) {
      seen = true;
      EXPECT_EQ(t["type"], "q8_0");
      EXPECT_EQ(t["how"], "requantized");
      EXPECT_GT(t["max_abs_error"].get<double>(), 0.0);
    }
  EXPECT_TRUE(seen);
  // Symmetric 4-bit groups of 32 are stored exactly as Q4_0.
  qs[l.name] = rtn_quantize(l.weight.to(at::kFloat), QFormat::parse("w4g32s"));
  wo.requant_type.clear();
  find_format("gguf").write(m, qs, {}, p, wo);
  EXPECT_EQ(rep["types"]["q4_0"].get<int64_t>(), 1);
  EXPECT_EQ(rep["max_abs_error_exact"].get<double>(), 0.0);
  Model r = load_any_model(p);
  EXPECT_TRUE(r.blocks[0].linear(Role::Q).weight.equal(qs[l.name].dequantize()));
  // Activation quantization has no place in GGUF.
  m.act.bits = 4;
  try {
    find_format("gguf").write(m, {}, {}, tmp_path("act.gguf"), wo);
    ADD_FAILURE() << "activation quantization was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("activation"), std::string::npos) << e.what();
  }
}
