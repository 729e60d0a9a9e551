// The gptq and compressed-tensors rows (src/formats/gptq.cpp, compressed_tensors.cpp): the
// bit layouts against an independent bit-by-bit packer (3-bit's 96-bit stream included), v1
// vs v2 zeros (a zero of 0 forces v2; GPTQModel's whole-word v1 borrow reads back exactly),
// dynamic overrides for linears in another format or left in full precision, the config keys
// the loaders read, and bad checkpoints refused in one line naming file, tensor and key.
// The loaders themselves (transformers, GPTQModel, compressed-tensors, vLLM) check the same
// files in tests/hfquant/.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/model/arch.h"
#include "sliderquant/model/model.h"
#include "sliderquant/model/quantized_weight.h"
#include "sliderquant/model/synthetic.h"
#include "sliderquant/quant/rtn.h"
#include "test_util.h"

namespace sq {
namespace {

using sq::testing::error_of;
using sq::testing::fresh_path;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A float32 qwen2 (q/k/v biases) of the tiny256 shape: rows of 128..512, whole words for
// every bit width.
const std::string& tiny_model() {
  static const std::string dir = [] {
    const std::string d = fresh_path("gptq_ct_tiny", false);
    SyntheticOptions o;
    o.dtype = at::kFloat;
    o.seed = 3;
    o.tokenizer_from = sq::testing::kStoriesModel;
    write_synthetic_model(d, synthetic_config("qwen2", "tiny256"), o);
    return d;
  }();
  return dir;
}

// RTN of every block linear onto F (the act-order variant permutes the groups of each).
std::map<std::string, QTensor> quantize(const Model& m, const std::string& f, bool act_order = false) {
  std::map<std::string, QTensor> q;
  for (const Block& b : m.blocks)
    for (const Linear* l : b.linears()) {
      QTensor t = rtn_quantize(l->weight.to(at::kFloat), QFormat::parse(f));
      if (act_order) {
        const int64_t in = t.in_features();
        t.g_idx = at::arange(in, at::kLong).mul(37).remainder(in).div(t.format.group_width(in), "floor").to(at::kInt);
      }
      q[l->name] = t;
    }
  return q;
}

void expect_same(const QTensor& a, const QTensor& b, const std::string& what) {
  EXPECT_EQ(a.format, b.format) << what << ": " << a.format.name() << " vs " << b.format.name();
  EXPECT_TRUE(at::equal(a.codes.to(at::kByte), b.codes.to(at::kByte))) << what;
  EXPECT_TRUE(at::equal(a.scales.to(at::kFloat), b.scales.to(at::kFloat))) << what;
  EXPECT_TRUE(at::equal(a.zeros.to(at::kFloat), b.zeros.to(at::kFloat))) << what;
  EXPECT_EQ(a.g_idx.defined(), b.g_idx.defined()) << what;
  if (a.g_idx.defined() && b.g_idx.defined()) {
    EXPECT_TRUE(at::equal(a.g_idx.to(at::kInt), b.g_idx.to(at::kInt))) << what;
  }
}

const QTensor& qtensor_of(const Model& m, const std::string& canonical) {
  for (const Block& b : m.blocks)
    for (const Linear* l : b.linears())
      if (l->name == canonical) {
        auto* w = dynamic_cast<const QTensorWeight*>(l->override_.get());
        SQ_CHECK(w, canonical << " is not quantized");
        return w->qtensor();
      }
  SQ_FAIL("no linear " << canonical);
}

nlohmann::json config_of(const std::string& dir) { return nlohmann::json::parse(read_file(path_join(dir, "config.json"))); }
void set_config(const std::string& dir, const nlohmann::json& c) { write_file_atomic(path_join(dir, "config.json"), c.dump(2)); }

// Rewrites DIR/model.safetensors with EDIT applied to its tensors.
void edit_tensors(const std::string& dir, const std::function<void(NamedTensors&)>& edit) {
  NamedTensors ts;
  {
    const Checkpoint ck = Checkpoint::open(dir);
    for (const std::string& n : ck.names()) ts.emplace_back(n, ck.get(n).clone());
  }
  edit(ts);
  write_safetensors(path_join(dir, "model.safetensors"), ts);
}

// Bit k of a little-endian stream of B-bit values V (independent of pack_bits).
uint32_t stream_word(const std::vector<int>& v, int bits, int word) {
  uint32_t w = 0;
  for (int b = 0; b < 32; ++b) {
    const int pos = word * 32 + b, idx = pos / bits, bit = pos % bits;
    if (idx < int(v.size()) && ((v[size_t(idx)] >> bit) & 1)) w |= 1u << b;
  }
  return w;
}

TEST(GptqFormat, BitLayoutIsGptqModelsForEveryWidth) {
  const Model m = load_model(tiny_model());
  for (int bits : {2, 3, 4, 8}) {
    SCOPED_TRACE(bits);
    const std::map<std::string, QTensor> q = quantize(m, "w" + std::to_string(bits) + "g64");
    const std::string out = fresh_path("gptq_bits" + std::to_string(bits));
    find_format("gptq").write(m, q, {}, out, {});
    const Checkpoint ck = Checkpoint::open(out);
    const std::string p = "model.layers.0.self_attn.q_proj";
    const QTensor& src = q.at("blocks.0.attn.q");
    const at::Tensor qweight = ck.get(p + ".qweight"), qzeros = ck.get(p + ".qzeros");
    const int64_t out_f = src.out_features(), in_f = src.in_features();
    ASSERT_EQ(qweight.sizes(), (at::IntArrayRef{in_f * bits / 32, out_f}));
    ASSERT_EQ(ck.get(p + ".scales").scalar_type(), at::kHalf);
    ASSERT_EQ(ck.get(p + ".g_idx").scalar_type(), at::kInt);
    // Column 5's stream along the input (codes of row 5 of our [out, in] codes).
    std::vector<int> col;
    for (int64_t i = 0; i < in_f; ++i) col.push_back(src.codes[5][i].item<int>());
    for (int w = 0; w < 6; ++w) EXPECT_EQ(uint32_t(qweight[w][5].item<int32_t>()), stream_word(col, bits, w)) << w;
    // qzeros row 1: zero - 1 (v1) of every output, packed along out.
    std::vector<int> zrow;
    for (int64_t n = 0; n < out_f; ++n) zrow.push_back(int(src.zeros[n][1].item<float>()) - 1);
    for (int w = 0; w < 3; ++w) EXPECT_EQ(uint32_t(qzeros[1][w].item<int32_t>()), stream_word(zrow, bits, w)) << w;
    EXPECT_EQ(config_of(out)["quantization_config"]["checkpoint_format"], "gptq");
    // And back.
    const Model back = find_format("gptq").read(out);
    for (const auto& [n, t] : q) expect_same(t, qtensor_of(back, n), n);
  }
}

TEST(GptqFormat, ThreeBitStreamMatchesTheDocumentedWordLayout) {
  // v0..v9 at bits 0,3,...,27 of word 0, v10's low two bits at 30-31; word 1 holds v10's bit
  // 2 at bit 0 and v11..v20 from bit 1 (EXPORTS.md 2.2).
  std::vector<int> v(32);
  for (int i = 0; i < 32; ++i) v[size_t(i)] = (i * 5 + 3) % 8;
  uint32_t w0 = 0;
  for (int i = 0; i < 10; ++i) w0 |= uint32_t(v[size_t(i)]) << (3 * i);
  w0 |= uint32_t(v[10] & 3) << 30;
  EXPECT_EQ(stream_word(v, 3, 0), w0);
  uint32_t w1 = uint32_t(v[10] >> 2);
  for (int i = 11; i <= 20; ++i) w1 |= uint32_t(v[size_t(i)]) << (3 * (i - 11) + 1);
  w1 |= uint32_t(v[21] & 1) << 31;
  EXPECT_EQ(stream_word(v, 3, 1), w1);
}

TEST(GptqFormat, ZeroOfZeroForcesV2AndGptqModelsBorrowedV1ReadsBack) {
  const Model m = load_model(tiny_model());
  std::map<std::string, QTensor> q = quantize(m, "w4g64");
  QTensor& t = q.at("blocks.1.mlp.up");
  t.zeros[3][0] = 0.f;  // a legal asymmetric zero that v1 cannot store
  const std::string forced = fresh_path("gptq_v1_forced");
  FormatWriteOptions v1;
  v1.checkpoint_format = "gptq";
  const std::string msg = error_of([&] { find_format("gptq").write(m, q, {}, forced, v1); });
  EXPECT_TRUE(contains(msg, "model.layers.1.mlp.up_proj")) << msg;
  EXPECT_TRUE(contains(msg, "gptq_v2")) << msg;
  EXPECT_FALSE(path_exists(forced));

  const std::string out = fresh_path("gptq_auto_v2");
  find_format("gptq").write(m, q, {}, out, {});
  EXPECT_EQ(config_of(out)["quantization_config"]["checkpoint_format"], "gptq_v2");
  const Model back = find_format("gptq").read(out);
  for (const auto& [n, x] : q) expect_same(x, qtensor_of(back, n), n);

  // GPTQModel's v2 -> v1: one whole-word subtraction of 0x11111111 per qzeros word (the zero
  // of 0 borrows from its neighbour); reading v1 adds the word back.
  edit_tensors(out, [](NamedTensors& ts) {
    for (auto& [n, x] : ts)
      if (n.size() > 7 && n.substr(n.size() - 7) == ".qzeros")
        x = x.to(at::kLong).sub(0x11111111).bitwise_and(int64_t(0xFFFFFFFF));
    for (auto& [n, x] : ts)
      if (n.size() > 7 && n.substr(n.size() - 7) == ".qzeros")
        x = at::where(x >= int64_t(0x80000000), x - int64_t(0x100000000), x).to(at::kInt);
  });
  nlohmann::json c = config_of(out);
  c["quantization_config"]["checkpoint_format"] = "gptq";
  set_config(out, c);
  const Model v1back = find_format("gptq").read(out);
  for (const auto& [n, x] : q) expect_same(x, qtensor_of(v1back, n), n);
}

TEST(GptqFormat, DynamicOverridesAndActOrder) {
  const Model m = load_model(tiny_model());
  std::map<std::string, QTensor> q = quantize(m, "w4g128s", /*act_order=*/true);
  q["blocks.0.mlp.down"] = rtn_quantize(m.blocks[0].linears()[6]->weight.to(at::kFloat), QFormat::parse("w8"));
  q.erase("blocks.1.attn.k");  // left in full precision
  const std::string out = fresh_path("gptq_dynamic");
  find_format("gptq").write(m, q, {}, out, {});
  const nlohmann::json qc = config_of(out)["quantization_config"];
  EXPECT_EQ(qc["bits"], 4);
  EXPECT_EQ(qc["group_size"], 128);
  EXPECT_EQ(qc["sym"], true);
  EXPECT_EQ(qc["desc_act"], true);
  EXPECT_EQ(qc["quant_method"], "gptq");
  EXPECT_EQ(qc["pack_dtype"], "int32");
  for (const char* k : {"static_groups", "true_sequential", "damp_percent", "lm_head", "meta"})
    EXPECT_TRUE(qc.contains(k)) << k;
  EXPECT_EQ(qc["dynamic"]["+:^model\\.layers\\.0\\.mlp\\.down_proj$"],
            nlohmann::json({{"bits", 8}, {"group_size", -1}, {"sym", false}, {"desc_act", false}}));
  EXPECT_EQ(qc["dynamic"]["-:^model\\.layers\\.1\\.self_attn\\.k_proj$"], nlohmann::json::object());
  EXPECT_EQ(config_of(out)["quantization_config"], nlohmann::json::parse(read_file(path_join(out, "quantize_config.json"))));
  const Model back = find_format("gptq").read(out);
  for (const auto& [n, x] : q) expect_same(x, qtensor_of(back, n), n);
  EXPECT_TRUE(back.blocks[1].linears()[1]->weight.defined());
  EXPECT_EQ(back.blocks[1].linears()[1]->override_, nullptr);
  const nlohmann::json d = find_format("gptq").describe(out);
  EXPECT_EQ(d["formats"], nlohmann::json({{"w4g128s", 12}, {"w8", 1}}));
}

// AutoRound saves a GPTQ checkpoint with a copy of its quantization_config in a
// quantization_config.json, the native format's file name: the directory is still GPTQ (it was
// refused as "not a sliderquant-native model"), while a native output stays native and a damaged
// native file still gets the native reader's error.
TEST(GptqFormat, AutoRoundsQuantizationConfigJsonIsNotTakenForANativeModel) {
  const Model m = load_model(tiny_model());
  const std::map<std::string, QTensor> q = quantize(m, "w4g64");
  const std::string out = fresh_path("gptq_autoround_layout");
  find_format("gptq").write(m, q, {}, out, {});
  nlohmann::json qc = config_of(out)["quantization_config"];
  qc["provider"] = "auto-round";
  write_file_atomic(path_join(out, "quantization_config.json"), qc.dump(2));
  ASSERT_NE(try_detect_format(out), nullptr);
  EXPECT_EQ(std::string(try_detect_format(out)->name), "gptq");
  const Model back = load_any_model(out);
  for (const auto& [n, x] : q) expect_same(x, qtensor_of(back, n), n);

  const std::string native = fresh_path("native_still_native");
  find_format("native").write(m, q, {}, native, {});
  EXPECT_EQ(std::string(try_detect_format(native)->name), "native");
  write_file_atomic(path_join(native, "quantization_config.json"), "{\"format\": 3");
  EXPECT_EQ(std::string(try_detect_format(native)->name), "native");
  EXPECT_TRUE(contains(error_of([&] { load_any_model(native); }), "quantization_config.json")) << native;
}

TEST(CompressedTensorsFormat, LayoutsConfigAndRoundTrip) {
  const Model m = load_model(tiny_model());
  struct Case {
    std::string format;
    bool act_order;
    std::string storage;
  };
  for (const Case& c : {Case{"w4g64", false, "pack-quantized"}, Case{"w8s", false, "pack-quantized"},
                        Case{"w2g128", false, "pack-quantized"}, Case{"w3g64s", false, "naive-quantized"},
                        Case{"w5g128", false, "naive-quantized"}}) {
    SCOPED_TRACE(c.format);
    const std::map<std::string, QTensor> q = quantize(m, c.format, c.act_order);
    const std::string out = fresh_path("ct_" + c.format);
    find_format("compressed-tensors").write(m, q, {}, out, {});
    EXPECT_EQ(detect_format(out).name, std::string("compressed-tensors"));
    const nlohmann::json qc = config_of(out)["quantization_config"];
    EXPECT_EQ(qc["quant_method"], "compressed-tensors");
    EXPECT_EQ(qc["quantization_status"], "compressed");
    EXPECT_EQ(qc["format"], c.storage);
    EXPECT_EQ(qc["ignore"], nlohmann::json({"lm_head"}));
    const nlohmann::json& g = qc["config_groups"]["group_0"];
    EXPECT_EQ(g["targets"], nlohmann::json({"Linear"}));
    const QFormat f = QFormat::parse(c.format);
    EXPECT_EQ(g["weights"]["num_bits"], f.bits);
    EXPECT_EQ(g["weights"]["symmetric"], f.symmetric);
    EXPECT_EQ(g["weights"]["strategy"], f.group_size > 0 ? "group" : "channel");
    EXPECT_EQ(g["weights"]["actorder"], c.act_order ? nlohmann::json("group") : nlohmann::json());
    const Checkpoint ck = Checkpoint::open(out);
    const std::string p = "model.layers.0.mlp.down_proj";
    const QTensor& src = q.at("blocks.0.mlp.down");
    const int64_t mid = int64_t(1) << (f.bits - 1);
    if (c.storage == "pack-quantized") {
      const at::Tensor packed = ck.get(p + ".weight_packed");
      std::vector<int> row;
      for (int64_t i = 0; i < src.in_features(); ++i) row.push_back(src.codes[2][i].item<int>());
      for (int w = 0; w < 4; ++w) EXPECT_EQ(uint32_t(packed[2][w].item<int32_t>()), stream_word(row, f.bits, w));
      EXPECT_TRUE(at::equal(ck.get(p + ".weight_shape").to(at::kLong),
                            at::tensor(std::vector<int64_t>{src.out_features(), src.in_features()})));
    } else {
      const at::Tensor w = ck.get(p + ".weight");
      EXPECT_EQ(w.scalar_type(), at::kChar);
      EXPECT_TRUE(at::equal(w.to(at::kLong), src.codes.to(at::kLong) - mid));
    }
    EXPECT_EQ(ck.has(p + ".weight_zero_point"), !f.symmetric);
    EXPECT_EQ(ck.has(p + ".weight_g_idx"), c.act_order);
    EXPECT_EQ(ck.get(p + ".weight_scale").scalar_type(), at::kFloat);  // a float32 model keeps float32 scales
    const Model back = find_format("compressed-tensors").read(out);
    for (const auto& [n, x] : q) expect_same(x, qtensor_of(back, n), n);
  }
}

// compressed-tensors 0.19 removed actorder "group": the writer refuses a g_idx, the reader still
// takes weight_g_idx from older files (here made by hand from a contiguous export).
TEST(CompressedTensorsFormat, ActOrderIsRefusedOnWriteAndReadFromOlderFiles) {
  const Model m = load_model(tiny_model());
  const std::map<std::string, QTensor> q = quantize(m, "w4g64", /*act_order=*/true);
  const std::string refused = fresh_path("ct_actorder");
  const std::string msg = error_of([&] { find_format("compressed-tensors").write(m, q, {}, refused, {}); });
  EXPECT_TRUE(contains(msg, "actorder")) << msg;
  EXPECT_FALSE(path_exists(refused));
  std::map<std::string, QTensor> plain = q;
  for (auto& [n, t] : plain) t.g_idx = at::Tensor();
  const std::string out = fresh_path("ct_old_gidx");
  find_format("compressed-tensors").write(m, plain, {}, out, {});
  edit_tensors(out, [&](NamedTensors& ts) {
    for (const Block& b : m.blocks)
      for (const Linear* l : b.linears()) {
        const std::string w = hf_tensor_name(l->name);
        ts.emplace_back(w.substr(0, w.size() - 7) + ".weight_g_idx", q.at(l->name).g_idx);
      }
  });
  nlohmann::json c = config_of(out);
  c["quantization_config"]["config_groups"]["group_0"]["weights"]["actorder"] = "group";
  set_config(out, c);
  const Model back = find_format("compressed-tensors").read(out);
  for (const auto& [n, x] : q) expect_same(x, qtensor_of(back, n), n);
}

TEST(CompressedTensorsFormat, RefusesWhatTheSchemaCannotSay) {
  Model m = load_model(tiny_model());
  const std::map<std::string, QTensor> q = quantize(m, "w4g64");
  m.act.bits = 8;
  m.act.k_bits = 4;
  m.act.kv_group = 64;
  const std::string out = fresh_path("ct_refused");
  std::string msg = error_of([&] { find_format("compressed-tensors").write(m, q, {}, out, {}); });
  EXPECT_TRUE(contains(msg, "KV-cache")) << msg;
  EXPECT_FALSE(path_exists(out));
  m.act.k_bits = 16;
  find_format("compressed-tensors").write(m, q, {}, out, {});
  const nlohmann::json g = config_of(out)["quantization_config"]["config_groups"]["group_0"];
  EXPECT_EQ(config_of(out)["quantization_config"]["format"], "int-quantized");
  EXPECT_EQ(g["input_activations"]["strategy"], "token");
  EXPECT_EQ(g["input_activations"]["dynamic"], true);
  EXPECT_EQ(g["input_activations"]["symmetric"], false);
  EXPECT_EQ(g["input_activations"]["num_bits"], 8);
  const Model back = find_format("compressed-tensors").read(out);
  EXPECT_EQ(back.act.bits, 8);
  for (const auto& [n, x] : q) expect_same(x, qtensor_of(back, n), n);
  // GPTQ is weight-only.
  msg = error_of([&] { find_format("gptq").write(m, q, {}, fresh_path("gptq_refused"), {}); });
  EXPECT_TRUE(contains(msg, "activation quantization")) << msg;
  // Norm biases (D²Quant's mean shift) have no place in either.
  m.act = ActQuant{};
  m.blocks[1].mlp_norm_bias = at::zeros({m.config.hidden_size});
  for (const char* f : {"gptq", "compressed-tensors"}) {
    msg = error_of([&] { find_format(f).write(m, q, {}, fresh_path("bias_refused"), {}); });
    EXPECT_TRUE(contains(msg, "model.layers.1.post_attention_layernorm.bias")) << f << ": " << msg;
  }
}

// llama.cpp's legacy zero-form grids are plain symmetric groups of 32: q4_0 = w4g32s,
// q8_0 = w8g32s (fp16 scale d, zero 2^(bits-1)); both serving formats store them exactly.
TEST(GptqFormat, LegacyGgmlGridsExportAsTheirUniformFormat) {
  const Model m = load_model(tiny_model());
  for (const char* grid : {"q4_0", "q8_0"}) {
    const std::map<std::string, QTensor> q = quantize(m, grid);
    for (const char* f : {"gptq", "compressed-tensors"}) {
      SCOPED_TRACE(std::string(grid) + " -> " + f);
      const std::string out = fresh_path(std::string("grid_") + grid + "_" + f);
      find_format(f).write(m, q, {}, out, {});
      const Model back = find_format(f).read(out);
      for (const auto& [n, x] : q) {
        const QTensor& y = qtensor_of(back, n);
        EXPECT_EQ(y.format.name(), std::string(grid) == "q4_0" ? "w4g32s" : "w8g32s");
        EXPECT_TRUE(at::equal(x.dequantize(), y.dequantize())) << n;
      }
    }
  }
  EXPECT_EQ(gptq_marlin_problem(QFormat::parse("q4_0")), "");
  EXPECT_NE(gptq_marlin_problem(QFormat::parse("q4_k")), "");
}

// A bad checkpoint: one error naming what and where.
void expect_refused(const std::string& dir, const std::vector<std::string>& parts) {
  const std::string msg = error_of([&] { load_any_model(dir); });
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  for (const std::string& p : parts) EXPECT_TRUE(contains(msg, p)) << "'" << p << "' not in: " << msg;
}

TEST(GptqFormat, BadCheckpointsAreRefusedNamingFileTensorAndKey) {
  const Model m = load_model(tiny_model());
  const std::map<std::string, QTensor> q = quantize(m, "w4g64", /*act_order=*/true);
  const std::string good = fresh_path("gptq_good");
  find_format("gptq").write(m, q, {}, good, {});
  auto copy = [&](const std::string& name) {
    const std::string d = fresh_path(name);
    std::filesystem::copy(good, d, std::filesystem::copy_options::recursive);
    return d;
  };
  const std::string p = "model.layers.1.mlp.gate_proj";
  {
    const std::string d = copy("gptq_bad_qweight");
    edit_tensors(d, [&](NamedTensors& ts) {
      for (auto& [n, x] : ts)
        if (n == p + ".qweight") x = x.narrow(0, 0, x.size(0) - 1).contiguous();
    });
    expect_refused(d, {p + ".qweight", "shape", d});
  }
  {
    const std::string d = copy("gptq_bad_scales");
    edit_tensors(d, [&](NamedTensors& ts) {
      for (auto& [n, x] : ts)
        if (n == p + ".scales") x = x.narrow(1, 0, x.size(1) - 32).contiguous();
    });
    expect_refused(d, {p + ".scales", "shape"});
  }
  {
    const std::string d = copy("gptq_bad_gidx");
    edit_tensors(d, [&](NamedTensors& ts) {
      for (auto& [n, x] : ts)
        if (n == p + ".g_idx") x[7] = 99;
    });
    expect_refused(d, {p + ".g_idx", "99"});
  }
  {
    const std::string d = copy("gptq_bad_bits");
    nlohmann::json c = config_of(d);
    c["quantization_config"]["bits"] = 9;
    set_config(d, c);
    expect_refused(d, {"config.json", "bits 9"});
  }
  {
    const std::string d = copy("gptq_bad_format");
    nlohmann::json c = config_of(d);
    c["quantization_config"]["checkpoint_format"] = "marlin";
    set_config(d, c);
    expect_refused(d, {"config.json", "checkpoint_format 'marlin'"});
  }
  {
    const std::string d = copy("gptq_bad_method");
    nlohmann::json c = config_of(d);
    c["quantization_config"]["quant_method"] = "awq";
    set_config(d, c);
    expect_refused(d, {"config.json", "quant_method 'awq'"});
  }
  {
    const std::string d = copy("gptq_missing_shard");
    nlohmann::json idx = {{"metadata", {{"total_size", 1}}},
                          {"weight_map", {{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
                                          {"model.norm.weight", "model-00002-of-00002.safetensors"}}}};
    write_file_atomic(path_join(d, "model.safetensors.index.json"), idx.dump());
    expect_refused(d, {"model-00001-of-00002.safetensors"});
  }
  {
    const std::string d = copy("ct_bad");
    FormatWriteOptions force;
    force.force = true;
    std::map<std::string, QTensor> plain = q;
    for (auto& [n, t] : plain) t.g_idx = at::Tensor();
    find_format("compressed-tensors").write(m, plain, {}, d, force);
    edit_tensors(d, [&](NamedTensors& ts) {
      at::Tensor g = at::zeros({m.config.hidden_size}, at::kInt);
      g[0] = -1;
      ts.emplace_back(p + ".weight_g_idx", g);
    });
    expect_refused(d, {p + ".weight_g_idx", "-1"});
    nlohmann::json c = config_of(d);
    c["quantization_config"]["config_groups"]["group_0"]["format"] = "float-quantized";
    set_config(d, c);
    expect_refused(d, {"config.json", "float-quantized"});
  }
}

}  // namespace
}  // namespace sq
