// ggml grids as quantizer formats (quant/ggml_grid.h): QTensor::dequantize equals ggml's
// dequantization of the exported bytes bit for bit, RTN equals ggml's reference quantizer,
// GPTQ/GPTAQ on the grid, native and GGUF storage.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/io/ggml_types.h"
#include "sliderquant/io/gguf.h"
#include "sliderquant/model/synthetic.h"
#include "sliderquant/pack/native.h"
#include "sliderquant/quant/ggml_grid.h"
#include "sliderquant/quant/gptq.h"
#include "sliderquant/quant/rtn.h"
#include "test_util.h"

using namespace sq;
using sq::testing::correlated_inputs;
using sq::testing::error_of;
using sq::testing::seeded_randn;

namespace {

const std::vector<std::string> kGrids = {"q4_0", "q5_0", "q8_0", "q4_1", "q5_1",
                                         "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"};

// Rows with uneven scales, an all-zero row, a constant row and a one-signed row.
at::Tensor test_weight(int64_t out, int64_t in, uint64_t seed) {
  at::Tensor W = seeded_randn({out, in}, seed).mul(seeded_randn({out, 1}, seed + 1).mul(0.7).exp().mul(0.05));
  W[1].zero_();
  W[2].fill_(0.031f);
  W[3] = W[3].abs();
  return W.contiguous();
}

GgmlType type_of(const QFormat& f) { return static_cast<GgmlType>(ggml_grid_type_id(f.grid)); }

std::vector<uint8_t> reference_bytes(const at::Tensor& W, GgmlType t) {
  const int64_t out = W.size(0), in = W.size(1);
  const uint64_t rb = ggml_nbytes(t, in);
  std::vector<uint8_t> b(size_t(rb * uint64_t(out)));
  at::Tensor w = W.contiguous();
  for (int64_t r = 0; r < out; ++r) ggml_quantize(t, w.data_ptr<float>() + r * in, b.data() + rb * uint64_t(r), in);
  return b;
}

// ggml's dequantization of BYTES [out, in].
at::Tensor ggml_values(const std::vector<uint8_t>& bytes, GgmlType t, int64_t out, int64_t in) {
  at::Tensor y = at::empty({out, in}, at::kFloat);
  ggml_dequantize(t, bytes.data(), y.data_ptr<float>(), out * in);
  return y;
}

// Bit patterns equal (so -0 vs 0 and NaN would count).
bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.contiguous().to(at::kFloat), y = b.contiguous().to(at::kFloat);
  return x.sizes() == y.sizes() && std::memcmp(x.data_ptr(), y.data_ptr(), size_t(x.numel()) * 4) == 0;
}

}  // namespace

TEST(KquantFormat, NamesParseAndBitsPerWeightAreGgmls) {
  const std::map<std::string, double> bpw = {{"q4_0", 4.5},  {"q5_0", 5.5},   {"q8_0", 8.5},    {"q4_1", 5.0},
                                             {"q5_1", 6.0},  {"q2_k", 2.625}, {"q3_k", 3.4375}, {"q4_k", 4.5},
                                             {"q5_k", 5.5},  {"q6_k", 6.5625}};
  for (const std::string& n : kGrids) {
    QFormat f = QFormat::parse(n);
    EXPECT_TRUE(f.ggml()) << n;
    EXPECT_EQ(f.name(), n);
    EXPECT_EQ(QFormat::parse(f.name()), f);
    EXPECT_DOUBLE_EQ(bits_per_weight(f, 16, 512, false), bpw.at(n)) << n;
  }
  EXPECT_EQ(QFormat::parse("Q4_K").name(), "q4_k");
  EXPECT_FALSE(QFormat::parse("q4_0") == QFormat::parse("w4g32s"));
  // Rows that are not whole blocks: an error naming the tensor.
  std::string e = error_of([] { QFormat::parse("q4_k").check(8, 576, "blk.0.q"); });
  EXPECT_NE(e.find("blk.0.q"), std::string::npos) << e;
  EXPECT_NE(e.find("256"), std::string::npos) << e;
}

TEST(KquantRtn, EqualsGgmlReferenceBytesAndDequantizesBitExactly) {
  for (const std::string& n : kGrids) {
    const QFormat f = QFormat::parse(n);
    const GgmlType t = type_of(f);
    at::Tensor W = test_weight(12, 512, 7);
    QTensor q = rtn_quantize(W, f);
    std::vector<uint8_t> ours = ggml_grid_encode(q, "w");
    std::vector<uint8_t> ref = reference_bytes(W, t);
    EXPECT_TRUE(ours == ref) << n << ": RTN onto the grid differs from ggml's reference quantizer";
    EXPECT_TRUE(same_bits(q.dequantize(), ggml_values(ours, t, 12, 512))) << n << ": dequantize is not ggml's";
  }
}

TEST(KquantRtn, ImatrixSearchAlsoRoundTripsExactly) {
  for (const char* n : {"q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q4_1"}) {
    const QFormat f = QFormat::parse(n);
    at::Tensor W = test_weight(6, 256, 11);
    at::Tensor im = seeded_randn({256}, 3).exp();
    QTensor q = ggml_grid_quantize(W, f, im);
    std::vector<uint8_t> b = ggml_grid_encode(q, "w");
    EXPECT_TRUE(same_bits(q.dequantize(), ggml_values(b, type_of(f), 6, 256))) << n;
  }
}

TEST(KquantGptq, BeatsRtnOnTheSameGridAndExportsExactly) {
  const int64_t out = 24, in = 512;
  at::Tensor W = test_weight(out, in, 21);
  at::Tensor X = correlated_inputs(2048, in, 5);
  HessianAccumulator acc(in);
  acc.add(X);
  const at::Tensor H = acc.H();
  for (const std::string& n : kGrids) {
    const QFormat f = QFormat::parse(n);
    QTensor r = rtn_quantize(W, f);
    const double e_rtn = output_error(W, r.dequantize(), H);
    for (GptqOrder order : {GptqOrder::Natural, GptqOrder::GroupPreserving}) {
      GptqOptions o;
      o.order = order;
      GptqResult g = gptq_quantize(W, H, f, o);
      EXPECT_LT(g.error, e_rtn) << n;
      std::vector<uint8_t> b = ggml_grid_encode(g.q, "w");
      EXPECT_TRUE(same_bits(g.q.dequantize(), ggml_values(b, type_of(f), out, in))) << n;
      if (order == GptqOrder::Natural && f.kquant()) {
        // The first super-block sees the original weights: ggml's own grid for them.
        EXPECT_TRUE(g.q.super_d.narrow(1, 0, 1).equal(r.super_d.narrow(1, 0, 1))) << n;
        EXPECT_TRUE(g.q.sub_scales.narrow(1, 0, 256 / f.group_size).equal(r.sub_scales.narrow(1, 0, 256 / f.group_size)))
            << n;
      }
    }
  }
  GptqOptions act;
  act.order = GptqOrder::ActOrder;
  std::string e = error_of([&] { gptq_quantize(W, H, QFormat::parse("q4_k"), act); });
  EXPECT_NE(e.find("act_order"), std::string::npos) << e;
}

TEST(KquantGptq, GptaqRunsOnTheGridAndZeroCrossTermIsGptq) {
  const int64_t out = 16, in = 256;
  at::Tensor W = test_weight(out, in, 31);
  at::Tensor Xq = correlated_inputs(1024, in, 8);
  at::Tensor Xf = Xq.add(seeded_randn({1024, in}, 9).mul(0.05));
  HessianAccumulator acc(in);
  acc.add(Xq);
  CrossAccumulator cross(in);
  cross.add(Xf, Xq);
  const QFormat f = QFormat::parse("q3_k");
  GptqResult g = gptq_quantize(W, acc.H(), f);
  GptqResult z = gptaq_quantize(W, acc.H(), at::zeros({in, in}), f);
  EXPECT_TRUE(z.q.codes.equal(g.q.codes));
  EXPECT_TRUE(same_bits(z.q.dequantize(), g.q.dequantize()));
  GptqResult a = gptaq_quantize(W, acc.H(), cross.dXXT(), f);
  std::vector<uint8_t> b = ggml_grid_encode(a.q, "w");
  EXPECT_TRUE(same_bits(a.q.dequantize(), ggml_values(b, type_of(f), out, in)));
}

TEST(KquantPack, NativeRoundTripKeepsEveryField) {
  for (const std::string& n : kGrids) {
    const QFormat f = QFormat::parse(n);
    QTensor q = rtn_quantize(test_weight(8, 256, 41), f);
    std::map<std::string, at::Tensor> stored;
    for (auto& [k, v] : pack_qtensor("lin", q)) stored[k] = v;
    if (f.kquant()) {
      EXPECT_TRUE(stored.count("lin.sub_scales") && stored.count("lin.super_d") && !stored.count("lin.scales")) << n;
    }
    QTensor r = unpack_qtensor("lin", f, 8, 256, [&](const std::string& k) {
      auto it = stored.find(k);
      return it == stored.end() ? at::Tensor() : it->second;
    });
    EXPECT_TRUE(same_bits(r.dequantize(), q.dequantize())) << n;
    EXPECT_TRUE(ggml_grid_encode(r, "lin") == ggml_grid_encode(q, "lin")) << n;
  }
}

TEST(KquantGguf, SyntheticModelExportsExactlyAndReadsBack) {
  const std::string dir = sq::testing::fresh_path("kq_synth");
  SyntheticOptions so;
  so.seed = 3;
  so.dtype = at::kFloat;
  so.tokenizer_from = sq::testing::kStoriesModel;
  write_synthetic_model(dir, synthetic_config("llama", "tiny256"), so);
  Model m = load_any_model(dir);
  std::map<std::string, QTensor> qs;
  const std::vector<std::string> fmts = {"q4_k", "q2_k", "q3_k", "q5_k", "q6_k", "q4_1", "q5_1"};
  size_t k = 0;
  for (Block& b : m.blocks)
    for (Linear& l : b.slots) qs[l.name] = rtn_quantize(l.weight.to(at::kFloat), QFormat::parse(fmts[k++ % fmts.size()]));
  const std::string p = sq::testing::fresh_path("kq.gguf");
  FormatWriteOptions wo;
  wo.force = true;
  nlohmann::json rep;
  wo.report = &rep;
  find_format("gguf").write(m, qs, {}, p, wo);
  EXPECT_EQ(rep["max_abs_error_exact"].get<double>(), 0.0);
  for (const auto& t : rep["tensors"])
    if (qs.count(t["source"].get<std::string>())) {
      EXPECT_EQ(t["how"], "exact") << t.dump();
      EXPECT_EQ(t["max_abs_error"].get<double>(), 0.0) << t.dump();
      EXPECT_EQ(t["type"].get<std::string>(), [&] {
        std::string s = qs.at(t["source"].get<std::string>()).format.name();
        if (s.back() == 'k') s.back() = 'K';
        return s;
      }()) << t.dump();
    }
  Model r = load_any_model(p);
  for (size_t i = 0; i < m.blocks.size(); ++i)
    for (size_t j = 0; j < m.blocks[i].slots.size(); ++j) {
      const Linear& l = m.blocks[i].slots[j];
      EXPECT_TRUE(same_bits(r.blocks[i].slots[j].weight, qs.at(l.name).dequantize())) << l.name;
    }
}

TEST(KquantPlan, FallbackForRowsThatAreNotWholeSuperBlocks) {
  std::string why;
  EXPECT_EQ(ggml_grid_fallback(QFormat::parse("q4_k"), 576, &why).name(), "q5_0");
  EXPECT_NE(why.find("576"), std::string::npos) << why;
  EXPECT_EQ(ggml_grid_fallback(QFormat::parse("q5_k"), 576).name(), "q5_1");
  EXPECT_EQ(ggml_grid_fallback(QFormat::parse("q6_k"), 576).name(), "q8_0");
  EXPECT_EQ(ggml_grid_fallback(QFormat::parse("q2_k"), 576, &why).name(), "q4_0");
  EXPECT_NE(why.find("iq4_nl"), std::string::npos) << why;
  EXPECT_EQ(ggml_grid_fallback(QFormat::parse("q3_k"), 576).name(), "q4_0");
  EXPECT_EQ(ggml_grid_fallback(QFormat::parse("q4_k"), 512).name(), "q4_k");
}

TEST(KquantCli, ExplainShowsTheFallbackAndTooNarrowRowsFailNamingTheLinear) {
  const std::string dir = sq::testing::fresh_path("kq_explain", true);
  write_file_atomic(dir + "/q4k.json", R"({"name": "x", "format": "q4_k",
    "overrides": [{"match": "blocks.*.mlp.down", "format": null}], "pipeline": [{"pass": "rtn"}]})");
  sq::testing::CliResult r = sq::testing::run_cli("recipe explain " + dir + "/q4k.json --model " + sq::testing::kStoriesModel);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("q5_0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fallback"), std::string::npos) << r.out;
  // mlp.down of stories260K has 172 columns: not even whole blocks of 32.
  write_file_atomic(dir + "/q4k_all.json", R"({"name": "x", "format": "q4_k", "pipeline": [{"pass": "rtn"}]})");
  r = sq::testing::run_cli("recipe explain " + dir + "/q4k_all.json --model " + sq::testing::kStoriesModel);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("blocks.0.mlp.down"), std::string::npos) << r.out;
}

// (tiny256-sliderquant-q2_k and tiny256-gptq-q3_k go the same way; left out here for time.)
TEST(KquantCli, GptqOntoQ4KExportsExactlyToGguf) {
  const std::string dir = sq::testing::fresh_path("kq_cli", true);
  sq::testing::CliResult r = sq::testing::run_cli("synth " + dir + "/m --preset tiny256 --dtype float32 --tokenizer " +
                                                  sq::testing::kStoriesModel + " -q");
  ASSERT_EQ(r.code, 0) << r.out;
  write_file_atomic(dir + "/calib.txt", sq::testing::sampled_stories(1, 32, 300));
  for (const std::string rec : {"tiny256-gptq-q4_k"}) {
    r = sq::testing::run_cli("quantize " + dir + "/m --recipe " + rec + " --out " + dir + "/" + rec + " --calib " + dir +
                             "/calib.txt -q");
    ASSERT_EQ(r.code, 0) << rec << ": " << r.out;
    r = sq::testing::run_cli("export " + dir + "/" + rec + " --format gguf --out " + dir + "/" + rec + ".gguf --json " +
                             dir + "/" + rec + ".json -q");
    ASSERT_EQ(r.code, 0) << rec << ": " << r.out;
    auto rep = nlohmann::json::parse(read_file(dir + "/" + rec + ".json"));
    EXPECT_EQ(rep["requantized"].get<int64_t>(), 0) << rec;
    EXPECT_EQ(rep["max_abs_error_exact"].get<double>(), 0.0) << rec;
    const std::string t = rec.substr(rec.size() - 4, 3) + "K";
    EXPECT_EQ(rep["types"][t].get<int64_t>(), 2 * 7) << rec << ": " << rep["types"].dump();
  }
}
