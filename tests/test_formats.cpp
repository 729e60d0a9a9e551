// Tests of the model-format registry (formats/model_format.h): every row of format_registry()
// against a spread of quantizer outputs (bits 2..8, symmetric and asymmetric, group sizes and
// per-channel, g_idx, DSQ with and without its column scale, a mixed two-width linear, and a
// ragged grouping): where cannot_store is "" the write -> read round trip
// gives back the same codes, scales and zeros (bit-identical weights); otherwise the reason is
// non-empty and the write refuses, naming the tensor and the reason, and leaves no output.
// Also: detection order, find_format, describe(), and the native format_version/features rules.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/formats/native.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/model/quantized_weight.h"
#include "sliderquant/quant/dsq.h"
#include "sliderquant/quant/mixed.h"
#include "sliderquant/quant/rtn.h"
#include "test_util.h"

using namespace sq;
namespace fs = std::filesystem;

namespace {
using sq::testing::error_of;

const std::string kModel = sq::testing::kStoriesModel;

std::string tmp(const std::string& name) { return sq::testing::fresh_path("fmt_" + name); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

bool same(const at::Tensor& a, const at::Tensor& b) {
  if (a.defined() != b.defined()) return false;
  return !a.defined() || (a.sizes() == b.sizes() && at::equal(a.to(at::kFloat), b.to(at::kFloat)));
}

// A linear of M by canonical name (nullptr when absent).
const Linear* find_linear(const Model& m, const std::string& name) {
  for (const Block& b : m.blocks)
    for (const Linear* l : b.linears())
      if (l->name == name) return l;
  return nullptr;
}

// What one quantizer produced for the block linears of stories260K.
struct Results {
  std::string label;
  std::map<std::string, QTensor> quantized;
  std::map<std::string, MixedQTensor> mixed;
};

// Quantizes every block linear whose input width FITS with MAKE (seeded, deterministic).
Results quantize_all(const Model& m, const std::string& label, const std::function<bool(int64_t)>& fits,
                     const std::function<QTensor(const at::Tensor&)>& make) {
  Results r{label, {}, {}};
  for (const Block& b : m.blocks)
    for (const Linear* l : b.linears())
      if (fits(l->weight.size(1))) r.quantized[l->name] = make(l->weight.to(at::kFloat));
  return r;
}

// The spread of quantizer outputs (see the file comment).
std::vector<Results> quantizer_spread(const Model& m) {
  std::vector<Results> out;
  std::vector<std::string> names;
  for (int bits = 2; bits <= 8; ++bits) {
    names.push_back("w" + std::to_string(bits));                        // per-channel, asymmetric
    names.push_back("w" + std::to_string(bits) + "s");                  // per-channel, symmetric
    names.push_back("w" + std::to_string(bits) + "g" + std::to_string(bits % 2 ? 32 : 16));        // grouped
    names.push_back("w" + std::to_string(bits) + "g" + std::to_string(bits % 2 ? 16 : 64) + "s");  // grouped, sym
  }
  for (const std::string& n : names) {
    const QFormat f = QFormat::parse(n);
    out.push_back(quantize_all(
        m, n, [&](int64_t in) { return f.group_size < 0 || in % f.group_size == 0; },
        [f](const at::Tensor& W) { return rtn_quantize(W, f); }));
  }
  // An act-order style group index (each column's group given explicitly, not j / 16).
  out.push_back(quantize_all(
      m, "w4g16 + g_idx", [](int64_t in) { return in % 16 == 0; },
      [](const at::Tensor& W) {
        QTensor q = rtn_quantize(W, QFormat::parse("w4g16"));
        const int64_t in = W.size(1);
        q.g_idx = at::arange(in, at::kLong).mul(7).remainder(in).div(16, "floor").to(at::kInt);
        return q;
      }));
  for (const char* n : {"w2g32d", "w3g16d", "w2d"}) {
    const QFormat f = QFormat::parse(n);
    out.push_back(quantize_all(
        m, n, [&](int64_t in) { return f.group_size < 0 || in % f.group_size == 0; },
        [f](const at::Tensor& W) { return dsq_rtn_quantize(W, f, 4); }));
  }
  out.push_back(quantize_all(
      m, "w3g32d, column scale absorbed", [](int64_t in) { return in % 32 == 0; },
      [](const at::Tensor& W) {
        QTensor q = dsq_rtn_quantize(W, QFormat::parse("w3g32d"), 4);
        take_column_scale(q);
        return q;
      }));
  // A ragged grouping: groups of 48 over 64 columns (a short last group of 16), as GPTQ's
  // g_idx = j // 48 has it; native and gptq store it, compressed-tensors 0.20 cannot read it.
  {
    Results r{"ragged w4g48", {}, {}};
    const Linear* l = m.blocks[0].linears()[0];
    QTensor q = rtn_quantize(l->weight.to(at::kFloat), QFormat::parse("w4g48"));
    EXPECT_EQ(q.scales.size(1), 2);
    r.quantized[l->name] = q;
    out.push_back(r);
  }
  // Mixed two-width linears: w3 on ~10% of the input channels, w2 on the rest; one part grouped.
  {
    Results r{"mixed w3+w2 / w4g16+w2", {}, {}};
    int i = 0;
    for (const Block& b : m.blocks)
      for (const Linear* l : b.linears()) {
        const int64_t in = l->weight.size(1);
        const bool grouped = (i++ % 2 == 0) && in % 16 == 0;
        const QFormat hi = QFormat::parse(grouped ? "w4g16" : "w3"), lo = QFormat::parse("w2");
        const int64_t k = mixed_hi_count(0.1, in, hi, lo);
        at::Tensor cols = std::get<0>(at::randperm(in, at::detail::createCPUGenerator(uint64_t(i)), at::kLong)
                                          .narrow(0, 0, k)
                                          .sort());
        r.mixed[l->name] = MixedQTensor::rtn(l->weight, cols, hi, lo);
      }
    out.push_back(r);
  }
  return out;
}

void expect_same_qtensor(const QTensor& a, const QTensor& b, const std::string& what) {
  EXPECT_TRUE(a.format == b.format) << what << ": " << a.format.name() << " vs " << b.format.name();
  EXPECT_TRUE(at::equal(a.codes, b.codes)) << what << ": codes";
  EXPECT_TRUE(same(a.scales, b.scales)) << what << ": scales";
  EXPECT_TRUE(same(a.zeros, b.zeros)) << what << ": zeros";
  EXPECT_TRUE(same(a.g_idx, b.g_idx)) << what << ": g_idx";
  EXPECT_TRUE(same(a.levels_r, b.levels_r)) << what << ": levels_r";
  EXPECT_TRUE(same(a.col_scale, b.col_scale)) << what << ": col_scale";
  EXPECT_TRUE(at::equal(a.dequantize(), b.dequantize())) << what << ": dequantized weights differ";
}

// Every tensor of BACK that is stored in full precision equals M's.
void expect_same_plain_tensors(const Model& m, const Model& back, const std::string& what) {
  auto a = canonical_tensors(m), b = canonical_tensors(back);
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first) << what;
    if (b[i].second.defined()) {
      EXPECT_TRUE(same(a[i].second, b[i].second)) << what << ": " << a[i].first;
    }
  }
}

// The reason FORMAT gives for the first result it refuses ("" when it stores them all).
std::string first_refusal(const ModelFormat& f, const Results& r, std::string& name) {
  for (const auto& [n, q] : r.quantized)
    if (std::string why = f.cannot_store(q); !why.empty()) {
      name = n;
      return why;
    }
  for (const auto& [n, q] : r.mixed)
    if (std::string why = f.cannot_store_mixed(q); !why.empty()) {
      name = n;
      return why;
    }
  return "";
}

}  // namespace

TEST(Formats, RegistryTableAndLookup) {
  std::vector<std::string> names;
  for (const ModelFormat& f : format_registry()) {
    names.push_back(f.name);
    EXPECT_TRUE(f.summary && *f.summary) << f.name;
    EXPECT_TRUE(f.looks_for && *f.looks_for) << f.name;
    EXPECT_TRUE(f.detect && f.read && f.write && f.describe && f.cannot_store && f.cannot_store_mixed) << f.name;
    EXPECT_EQ(&find_format(f.name), &f);
  }
  // Detection order: the specific ones first (gptq and compressed-tensors directories are also
  // config.json + safetensors directories).
  EXPECT_EQ(names, (std::vector<std::string>{"native", "gptq", "compressed-tensors", "hf", "gguf"}));
  const std::string msg = error_of([] { find_format("no-such-format"); });
  EXPECT_TRUE(contains(msg, "unknown model format 'no-such-format'")) << msg;
  EXPECT_TRUE(contains(msg, "native, gptq, compressed-tensors, hf, gguf")) << msg;
  EXPECT_THROW(find_format("no-such-format"), UsageError);
}

// Every row x every quantizer output: exact round trip or a named refusal.
TEST(Formats, EveryFormatRoundTripsOrRefusesEveryQuantizer) {
  const Model m = load_model(kModel);
  const std::vector<Results> spread = quantizer_spread(m);
  int exact = 0, refused = 0;
  std::map<std::string, int> stored;  // format -> quantizer outputs stored exactly
  for (const ModelFormat& f : format_registry())
    for (const Results& r : spread) {
      SCOPED_TRACE(std::string(f.name) + " x " + r.label);
      ASSERT_FALSE(r.quantized.empty() && r.mixed.empty());
      const std::string out = tmp(std::string(f.name) + "_rt");
      std::string name;
      const std::string why = first_refusal(f, r, name);
      if (!why.empty()) {
        const std::string msg = error_of([&] { f.write(m, r.quantized, r.mixed, out, {}); });
        EXPECT_TRUE(contains(msg, name)) << msg;
        EXPECT_TRUE(contains(msg, why)) << msg;
        EXPECT_TRUE(contains(msg, f.name)) << msg;
        EXPECT_FALSE(path_exists(out));
        ++refused;
        continue;
      }
      f.write(m, r.quantized, r.mixed, out, {});
      EXPECT_EQ(detect_format(out).name, std::string(f.name));
      const Model back = f.read(out);
      if (std::string(f.name) == "gguf") {
        // GGUF is read dequantized (llama.cpp's blocks are not our QTensor): the weights come
        // back as the grid's values, exact up to the fp16 block minimum of Q4_1 / Q5_1.
        for (const auto& [n, q] : r.quantized) {
          const Linear* l = find_linear(back, n);
          ASSERT_NE(l, nullptr) << n;
          const at::Tensor want = q.dequantize();
          EXPECT_LE(l->effective_weight().sub(want).abs().max().item<double>(),
                    1e-3 * want.abs().max().item<double>()) << n;
        }
        ++exact;
        ++stored[f.name];
        continue;
      }
      for (const auto& [n, q] : r.quantized) {
        const Linear* l = find_linear(back, n);
        ASSERT_NE(l, nullptr) << n;
        EXPECT_FALSE(l->weight.defined()) << n << ": a packed linear has no master weight";
        auto* w = dynamic_cast<const QTensorWeight*>(l->override_.get());
        ASSERT_NE(w, nullptr) << n;
        expect_same_qtensor(q, w->qtensor(), n);
      }
      for (const auto& [n, q] : r.mixed) {
        const Linear* l = find_linear(back, n);
        ASSERT_NE(l, nullptr) << n;
        auto* w = dynamic_cast<const MixedQTensorWeight*>(l->override_.get());
        ASSERT_NE(w, nullptr) << n;
        EXPECT_TRUE(at::equal(w->mixed().hi_cols.to(at::kLong), q.hi_cols.to(at::kLong))) << n;
        expect_same_qtensor(q.hi, w->mixed().hi, n + " hi");
        expect_same_qtensor(q.lo, w->mixed().lo, n + " lo");
        EXPECT_TRUE(at::equal(q.dequantize(), w->mixed().dequantize())) << n;
      }
      expect_same_plain_tensors(m, back, out);
      ++exact;
      ++stored[f.name];
    }
  // native stores every quantizer output; hf stores none of them; gguf stores w5g32 (Q5_1)
  // only; compressed-tensors every uniform format without a g_idx but not DSQ, mixed widths or
  // the ragged grouping; gptq only what fills whole words on stories260K's widths (64 and 172):
  // every 8-bit format (rows of 64 and 172 divide by 4) and the ragged w4g48 on one [64, 64] linear.
  const int n = int(spread.size());
  EXPECT_EQ(stored, (std::map<std::string, int>{
                        {"native", n}, {"gguf", 1}, {"compressed-tensors", n - 7}, {"gptq", 5}}));
  EXPECT_EQ(exact + refused, n * int(format_registry().size()));
}

TEST(Formats, HfWritesTheFullPrecisionModelAndRefusesWhatItCannotHold) {
  Model m = load_model(kModel);
  const ModelFormat& hf = find_format("hf");
  const std::string out = tmp("hf_copy");
  hf.write(m, {}, {}, out, {});
  EXPECT_EQ(detect_format(out).name, std::string("hf"));
  const Model back = load_any_model(out);
  expect_same_plain_tensors(m, back, out);
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.model"})
    EXPECT_TRUE(path_exists(path_join(out, f))) << f;
  EXPECT_THROW(hf.write(m, {}, {}, out, {}), UsageError);  // exists, no force
  // A model loaded packed has no full-precision weights to write.
  const std::string nat = tmp("hf_from_native");
  const Linear* q0 = m.blocks[0].linears()[0];
  write_native_model(m, {{q0->name, rtn_quantize(q0->weight.to(at::kFloat), QFormat::parse("w4"))}}, nat, {});
  const Model packed = load_any_model(nat);
  std::string msg = error_of([&] { hf.write(packed, {}, {}, tmp("hf_bad"), {}); });
  EXPECT_TRUE(contains(msg, q0->name) && contains(msg, "no full-precision weight")) << msg;
  // Activation quantization has no place in a plain HF model.
  m.act.bits = 4;
  msg = error_of([&] { hf.write(m, {}, {}, tmp("hf_act"), {}); });
  EXPECT_TRUE(contains(msg, "activation quantization")) << msg;
  EXPECT_FALSE(path_exists(tmp("hf_act")));
}

TEST(Formats, DetectionOrder) {
  const Model m = load_model(kModel);
  const std::string nat = tmp("detect_native");
  const Linear* l = m.blocks[1].linears()[2];
  write_native_model(m, {{l->name, rtn_quantize(l->weight.to(at::kFloat), QFormat::parse("w4g32"))}}, nat, {});
  // A native output is also config.json + safetensors: native must win.
  EXPECT_EQ(detect_format(nat).name, std::string("native"));
  EXPECT_TRUE(is_native_quantized(nat));
  EXPECT_EQ(detect_format(kModel).name, std::string("hf"));
  EXPECT_FALSE(is_native_quantized(kModel));
  EXPECT_NE(dynamic_cast<const QTensorWeight*>(find_linear(load_any_model(nat), l->name)->override_.get()), nullptr);
  EXPECT_FALSE(find_linear(load_any_model(kModel), l->name)->override_);
  // Neither: a directory with only config.json, and one that does not exist.
  const std::string bare = sq::testing::fresh_path("fmt_bare", true);
  write_file_atomic(path_join(bare, "config.json"), read_file(path_join(kModel, "config.json")));
  EXPECT_EQ(try_detect_format(bare), nullptr);
  std::string msg = error_of([&] { load_any_model(bare); });
  EXPECT_TRUE(contains(msg, bare) && contains(msg, "no known model format")) << msg;
  EXPECT_TRUE(contains(msg, "quantization_config.json")) << msg;
  msg = error_of([] { detect_format("/nonexistent/model"); });
  EXPECT_TRUE(contains(msg, "/nonexistent/model")) << msg;
}

TEST(Formats, DescribeReportsWhatIsStored) {
  const Model m = load_model(kModel);
  const Block& b0 = m.blocks[0];
  const Linear* plain = b0.linears()[0];
  const Linear* mixed_l = b0.linears()[1];
  const Linear* dsq_l = b0.linears()[2];
  std::map<std::string, QTensor> q = {
      {plain->name, rtn_quantize(plain->weight.to(at::kFloat), QFormat::parse("w4g32"))},
      {dsq_l->name, dsq_rtn_quantize(dsq_l->weight.to(at::kFloat), QFormat::parse("w2g32d"), 4)}};
  const int64_t in = mixed_l->weight.size(1);
  std::map<std::string, MixedQTensor> mx = {
      {mixed_l->name, MixedQTensor::rtn(mixed_l->weight, at::arange(0, in, 8, at::kLong), QFormat::parse("w3"),
                                        QFormat::parse("w2"))}};
  const std::string out = tmp("describe");
  NativeWriteOptions wo;
  wo.extra_json = R"({"recipe": {"name": "my-recipe"}, "calibration": {"dataset": "c4", "sha256": "ab", "seed": 7}})";
  write_native_model(m, q, out, wo, mx);

  const nlohmann::json d = find_format("native").describe(out);
  EXPECT_EQ(d["format"], "native");
  EXPECT_EQ(d["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(d["family"], "llama");
  EXPECT_EQ(d["quantized"], true);
  EXPECT_EQ(d["format_label"], "sliderquant-native");
  EXPECT_EQ(d["format_version"], kNativeFormatVersion);
  EXPECT_EQ(d["features"], nlohmann::json({"dsq", "mixed"}));
  EXPECT_EQ(d["formats"], nlohmann::json({{"w4g32", 1}, {"w2g32d", 1}, {"w3+w2", 1}}));
  EXPECT_EQ(d["recipe"], "my-recipe");
  EXPECT_EQ(d["calibration"], nlohmann::json({{"dataset", "c4"}, {"sha256", "ab"}, {"seed", 7}}));
  auto prefix = [](const Linear* l) {
    const std::string hf = hf_tensor_name(l->name);
    return hf.substr(0, hf.size() - 7);
  };
  const nlohmann::json& lp = d["linears"][prefix(plain)];
  const int64_t o = plain->weight.size(0), i = plain->weight.size(1);
  EXPECT_EQ(lp["format"], "w4g32");
  EXPECT_EQ(lp["shape"], nlohmann::json({o, i}));
  EXPECT_DOUBLE_EQ(lp["bits_per_weight"].get<double>(), bits_per_weight(QFormat::parse("w4g32"), o, i, false));
  const nlohmann::json& lm = d["linears"][prefix(mixed_l)];
  EXPECT_EQ(lm["format"], "w3+w2");
  EXPECT_EQ(lm["k"], in / 8);
  EXPECT_DOUBLE_EQ(lm["bits_per_weight"].get<double>(), mx.begin()->second.bits_per_weight());
  EXPECT_EQ(d["linears"].size(), 3u);
  EXPECT_GT(d["bits_per_weight_quantized_linears"].get<double>(), 2.0);
  EXPECT_EQ(d["metadata"]["tensors"].size(), 3u);  // the file itself

  const nlohmann::json h = find_format("hf").describe(kModel);
  EXPECT_EQ(h["format"], "hf");
  EXPECT_EQ(h["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(h["quantized"], false);
  EXPECT_TRUE(h["linears"].empty());
  EXPECT_EQ(h["parameters"], m.config.param_count());
}

// quantization_config.json: version 2 with its features list; version 1 files still read;
// a newer version or an unknown feature is refused by name.
TEST(Formats, NativeVersionAndFeatures) {
  const Model m = load_model(kModel);
  const Linear* l = m.blocks[0].linears()[0];
  const std::string out = tmp("version");
  write_native_model(m, {{l->name, dsq_rtn_quantize(l->weight.to(at::kFloat), QFormat::parse("w2g32d"), 4)}}, out,
                     {});
  const std::string qpath = path_join(out, "quantization_config.json");
  const nlohmann::json qc = nlohmann::json::parse(read_file(qpath));
  EXPECT_EQ(qc["format_version"], 2);
  EXPECT_EQ(qc["features"], nlohmann::json({"dsq"}));
  auto load_with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = qc;
    edit(j);
    write_file_atomic(qpath, j.dump(2));
    return error_of([&] { load_any_model(out); });
  };
  EXPECT_EQ(load_with([](nlohmann::json&) {}), "<no error>");
  // A version-1 file (before the features list) still reads.
  EXPECT_EQ(load_with([](nlohmann::json& j) {
              j["format_version"] = 1;
              j.erase("features");
            }),
            "<no error>");
  EXPECT_EQ(load_with([](nlohmann::json& j) { j["format_version"] = 3; }),
            "unsupported format_version 3 in " + qpath + " (this build reads 1 to 2)");
  EXPECT_EQ(load_with([](nlohmann::json& j) { j.erase("format_version"); }),
            "unsupported format_version 0 in " + qpath + " (this build reads 1 to 2)");
  std::string msg = load_with([](nlohmann::json& j) { j["features"].push_back("fp4_e2m1"); });
  EXPECT_TRUE(contains(msg, "unsupported feature 'fp4_e2m1' in " + qpath)) << msg;
  msg = load_with([](nlohmann::json& j) { j["features"] = nlohmann::json::array(); });  // uses dsq, names none
  EXPECT_TRUE(contains(msg, "'dsq'")) << msg;
  msg = load_with([](nlohmann::json& j) { j.erase("features"); });
  EXPECT_TRUE(contains(msg, "features")) << msg;
  load_with([](nlohmann::json&) {});
}

// Found by fuzz/fuzz_formats.cpp: the native reader took a NaN scale (the dequantized weight
// was NaN while eval's HF-tensor check never saw it), and a tensors entry without a "format"
// escaped as a nlohmann exception instead of one Error line.
TEST(Formats, NativeReaderRefusesNonFiniteScalesAndMalformedTensorEntries) {
  const Model m = load_model(kModel);
  const Linear* l = m.blocks[0].linears()[0];
  const std::string nat = tmp("native_nan_scale");
  write_native_model(m, {{l->name, rtn_quantize(l->weight.to(at::kFloat), QFormat::parse("w4g32"))}}, nat, {});
  ASSERT_NO_THROW(load_any_model(nat));
  // The first scale of the linear's ".scales" (float16) becomes NaN, in place.
  std::string st_path;
  for (const auto& e : fs::directory_iterator(nat))
    if (e.path().extension() == ".safetensors") st_path = e.path().string();
  std::string bytes = read_file(st_path);
  uint64_t header = 0;
  for (int i = 0; i < 8; ++i) header |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  std::string scales;
  const auto file = SafetensorsFile::open(st_path);
  for (const TensorInfo& ti : file->tensors())
    if (ti.name.size() > 7 && ti.name.compare(ti.name.size() - 7, 7, ".scales") == 0) {
      scales = ti.name;
      bytes[8 + header + ti.begin] = '\x00';  // float16 0x7e00: NaN
      bytes[8 + header + ti.begin + 1] = '\x7e';
    }
  ASSERT_FALSE(scales.empty());
  write_file_atomic(st_path, bytes);
  std::string e = error_of([&] { load_any_model(nat); });
  EXPECT_TRUE(contains(e, scales) && contains(e, "NaN or Inf") && contains(e, st_path)) << e;
  // quantization_config.json: a tensors entry whose "format" is missing, then not a string.
  const std::string good = tmp("native_bad_entry");
  write_native_model(m, {{l->name, rtn_quantize(l->weight.to(at::kFloat), QFormat::parse("w4g32"))}}, good, {});
  const std::string qpath = path_join(good, "quantization_config.json");
  nlohmann::json qc = nlohmann::json::parse(read_file(qpath));
  ASSERT_EQ(qc["tensors"].size(), 1u);
  nlohmann::json& entry = qc["tensors"].begin().value();
  entry.erase("format");
  write_file_atomic(qpath, qc.dump());
  e = error_of([&] { load_any_model(good); });
  EXPECT_TRUE(contains(e, qpath) && contains(e, "needs a string 'format'")) << e;
  entry["format"] = 4;
  write_file_atomic(qpath, qc.dump());
  e = error_of([&] { load_any_model(good); });
  EXPECT_TRUE(contains(e, qpath) && contains(e, "needs a string 'format'")) << e;
  // Any other JSON type trap in a row becomes one Error naming the model at the registry's edge.
  qc["recipe"] = 7;  // describe reads recipe.name
  entry["format"] = "w4g32";
  write_file_atomic(qpath, qc.dump());
  ASSERT_NO_THROW(load_any_model(good));
  e = error_of([&] { detect_format(good).describe(good); });
  EXPECT_TRUE(contains(e, good) && contains(e, "wrong type")) << e;
}
