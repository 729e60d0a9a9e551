// `sliderquant report` (eval/report.h): a results folder in the sweep layout plus a hand-made
// folder, a failed run, an unreadable JSON and a loose JSON; the Markdown, CSV and HTML it
// gives, and the CLI's errors and exit codes. The JSON shapes are trimmed copies of what
// `quantize --json` and `eval --json` write on stories260K.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "sliderquant/core/error.h"
#include "sliderquant/eval/report.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sq::report;

namespace {

// quantize --json (stories260K, test/stories-gptq-w2-pc; trimmed)
std::string quantize_json(const std::string& name, double bits, double ppl, double seconds) {
  return R"J({"bits_per_weight_planned": )J" + std::to_string(bits) +
         R"J(, "calibration": {"dataset": "c4-2k", "samples": 8, "seed": 0, "seqlen": 256, "sha256": "e444"},
  "calibration_dtype": "float32", "device": "cpu", "output": "/tmp/rep/q2",
  "peak_gpu_bytes": 0, "peak_rss_bytes": 453595136,
  "perplexity": [{"dataset": "wikitext2", "ppl": )J" + std::to_string(ppl) +
         R"J(, "protocol": "gptq", "seqlen": 512, "sha256": "696c", "windows": 1591}],
  "recipe": {"calibration": {"dataset": "c4-2k", "samples": 8, "seed": 0, "seqlen": 256},
             "format": "w2", "name": ")J" + name + R"J(", "overrides": [],
             "pipeline": [{"options": {"damp": 0.01}, "pass": "gptq"}]},
  "seconds_total": )J" + std::to_string(seconds) +
         R"J(, "stream_dtype": "float32",
  "timings_seconds": {"calibration forwards + hessians": 0.61, "quantize (solve)": 0.10},
  "train_autocast": "off (learned passes compute in float32)"})J";
}

// eval --json (stories260K; --ppl wikitext2,ptb --tasks piqa,arc_easy --kld-base; trimmed)
const char* kEvalJson = R"J({"architecture": "LlamaForCausalLM", "device": "cpu", "dtype": "float32",
  "kld": {"base": "tests/fixtures/stories260K/hf", "results": [
    {"dataset": "wikitext2", "mean_kl": 0.2993773311958748, "median_kl": 0.17, "top1_agreement": 0.61, "windows": 4},
    {"dataset": "ptb", "mean_kl": 0.33276188184206207, "median_kl": 0.18, "top1_agreement": 0.64, "windows": 4}]},
  "model": "/tmp/rep/q1", "parameters": 260032, "peak_gpu_bytes": 2147483648, "peak_rss_bytes": 408592384,
  "perplexity": [
    {"bos": true, "dataset": "wikitext2", "nll": 4.82, "ppl": 123.98030188461338, "protocol": "gptq", "seqlen": 512, "windows": 4},
    {"bos": true, "dataset": "ptb", "nll": 4.90, "ppl": 134.60109157044405, "protocol": "gptq", "seqlen": 512, "windows": 4}],
  "resident": true, "threads": 1, "tokenizer": {"bos": 1, "kind": "sentencepiece"}, "tool": "sliderquant",
  "torch": "1.13.0", "version": "0.1.0",
  "zeroshot": {"arc_easy": {"acc": 0.2, "acc_norm": 0.15, "metric": "acc_norm", "n": 20, "score": 15.0},
               "piqa": {"acc": 0.5, "acc_norm": 0.55, "metric": "acc_norm", "n": 20, "score": 55.00000000000001}},
  "zeroshot_summary": {"rule": "mean over tasks of 100 * (acc_norm if the task reports it else acc)", "score": 35.0, "tasks": 2}})J";

std::string result_json(const std::string& recipe, int seed, const std::string& status, const std::string& error,
                        int exit_code) {
  return R"J({"sliderquant_sweep_result": 1, "model": "stories260K", "recipe": ")J" + recipe + R"J(", "seed": )J" +
         std::to_string(seed) + R"J(, "status": ")J" + status + R"J(", "error": ")J" + error +
         R"J(", "exit_code": )J" + std::to_string(exit_code) + R"J(, "attempts": 2, "log": "task.log", "seconds": 42.5})J";
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

using Cli = sq::testing::CliResult;
using sq::testing::run_cli;  // ARGS are single-quoted by the caller where needed

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

class Report : public ::testing::Test {
 protected:
  fs::path dir, res;
  void SetUp() override {
    dir = fs::path(::testing::TempDir()) / ("sq" + std::to_string(::getpid()) + "_report");
    fs::remove_all(dir);
    res = dir / "RESULTS";
    // sweep runs: two gptq widths, two seeds of one, one rtn, one failed sliderquant
    const fs::path a = res / "stories260K__test+stories-gptq-w2-pc__s0";
    write(a / "quantize.json", quantize_json("stories-gptq-w2-pc", 2.2383, 1484.37, 3.58));
    write(a / "eval.json", kEvalJson);
    write(a / "result.json", result_json("test/stories-gptq-w2-pc", 0, "done", "", 0));
    write(a / "task.log", "log\n");
    const fs::path b = res / "stories260K__test+stories-gptq-w2-pc__s1";
    write(b / "quantize.json", quantize_json("stories-gptq-w2-pc", 2.2383, 1500.0, 3.7));
    write(b / "result.json", result_json("test/stories-gptq-w2-pc", 1, "done", "", 0));
    const fs::path c = res / "stories260K__test+stories-gptq-w4-pc__s0";
    write(c / "quantize.json", quantize_json("stories-gptq-w4-pc", 4.2648, 125.5, 3.1));
    write(c / "result.json", result_json("test/stories-gptq-w4-pc", 0, "done", "", 0));
    const fs::path d = res / "stories260K__test+stories-rtn-w4-pc__s0";
    write(d / "quantize.json", quantize_json("stories-rtn-w4-pc", 4.2648, 131.25, 0.03));
    const fs::path f = res / "stories260K__test+stories-sliderquant-w2__s0";
    write(f / "result.json", result_json("test/stories-sliderquant-w2", 0, "failed",
                                         "error: non-finite loss in <block 3> & \\\"window\\\" 2", 1));
    // a hand-made folder: any file names, told apart by their keys; a loose JSON and a model folder
    write(res / "hand" / "a.json", quantize_json("my-<recipe>", 3.0, 200.0, 10.0));
    write(res / "hand" / "b.json", kEvalJson);
    write(res / "hand" / "notes.json", R"J({"comment": "not a report"})J");
    write(res / "hand" / "model" / "config.json", R"J({"architectures": ["LlamaForCausalLM"]})J");
    write(res / "hand" / "model" / "quantization_config.json", R"J({"formats": {}})J");
    // an unreadable one
    write(res / "broken" / "quantize.json", R"J({"bits_per_weight_planned": 2.5, )J");
  }
  void TearDown() override { fs::remove_all(dir); }
};

TEST_F(Report, CollectsSweepHandMadeFailedAndUnreadable) {
  Collection c = collect_runs(res.string());
  ASSERT_EQ(c.runs.size(), 7u);
  EXPECT_EQ(c.count("done"), 5);
  EXPECT_EQ(c.count("failed"), 1);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("hand/notes.json"), std::string::npos);
  EXPECT_EQ(c.ppl_datasets, (std::vector<std::string>{"wikitext2", "ptb"}));
  EXPECT_EQ(c.kl_datasets, (std::vector<std::string>{"wikitext2", "ptb"}));
  EXPECT_EQ(c.tasks, (std::vector<std::string>{"arc_easy", "piqa"}));
  // sorted by model, then bits (unknown last), then recipe, then seed; unknown model last
  const sq::report::Run& first = c.runs[0];
  EXPECT_EQ(first.model, "stories260K");
  EXPECT_EQ(first.recipe, "test/stories-gptq-w2-pc");
  EXPECT_EQ(first.seed, 0);
  EXPECT_NEAR(*first.bits, 2.2383, 1e-9);
  EXPECT_NEAR(first.ppl.at("wikitext2"), 123.98030188461338, 1e-9);  // eval's perplexity wins over quantize's
  EXPECT_NEAR(first.ppl.at("ptb"), 134.60109157044405, 1e-9);
  EXPECT_NEAR(*first.zeroshot_mean, 35.0, 1e-9);
  EXPECT_NEAR(first.kl.at("ptb"), 0.33276188184206207, 1e-12);
  EXPECT_NEAR(*first.peak_rss, 453595136.0, 0.5);
  EXPECT_NEAR(*first.peak_gpu, 2147483648.0, 0.5);
  EXPECT_NEAR(*first.quantize_seconds, 3.58, 1e-9);
  EXPECT_EQ(c.runs[1].seed, 1);
  EXPECT_NEAR(c.runs[1].ppl.at("wikitext2"), 1500.0, 1e-9);  // quantize --eval's when there is no eval
  EXPECT_EQ(c.runs[2].recipe, "test/stories-gptq-w4-pc");
  EXPECT_EQ(c.runs[3].recipe, "test/stories-rtn-w4-pc");
  EXPECT_EQ(c.runs[3].status, "done");  // no result.json: done from its quantize report
  const sq::report::Run& failed = c.runs[4];
  EXPECT_EQ(failed.recipe, "test/stories-sliderquant-w2");
  EXPECT_EQ(failed.status, "failed");
  EXPECT_FALSE(failed.bits.has_value());
  EXPECT_EQ(failed.error, "error: non-finite loss in <block 3> & \"window\" 2");
  EXPECT_EQ(failed.exit_code, 1);
  // the unknown-model rows: the hand-made folder (3 bits) and the unreadable one
  EXPECT_EQ(c.runs[5].dir, "hand");
  EXPECT_EQ(c.runs[5].model, "");
  EXPECT_EQ(c.runs[5].recipe, "my-<recipe>");
  EXPECT_NEAR(c.runs[5].ppl.at("ptb"), 134.60109157044405, 1e-9);
  EXPECT_EQ(c.runs[5].files, (std::vector<std::string>{"a.json", "b.json"}));
  EXPECT_EQ(c.runs[6].dir, "broken");
  EXPECT_EQ(c.runs[6].status.rfind("unreadable: quantize.json: parse error", 0), 0u) << c.runs[6].status;
}

TEST_F(Report, MarkdownAndCsv) {
  Collection c = collect_runs(res.string());
  const std::string md = render_markdown(c);
  EXPECT_NE(md.find("7 runs: 5 done, 1 failed, 1 other"), std::string::npos) << md;
  EXPECT_NE(md.find("| model | recipe | seed | bits/w | ppl wikitext2 | ppl ptb | zero-shot | zs arc_easy | zs piqa | "
                    "KL wikitext2 | KL ptb | quantize time | peak RSS | peak GPU | status | folder |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| stories260K | test/stories-gptq-w2-pc | 0 | 2.238 | 123.98 | 134.60 | 35.00 | 15.00 | 55.00 | "
                    "0.2994 | 0.3328 | 3.58 s | 432.58 MiB | 2.00 GiB | done (2 attempts) | stories260K__test+stories-gptq-w2-pc__s0 |"),
            std::string::npos)
      << md;
  // missing values are em dashes; the failed run's error is on its row, escaped for Markdown
  EXPECT_NE(md.find("| stories260K | test/stories-sliderquant-w2 | 0 | \xE2\x80\x94 |"), std::string::npos) << md;
  EXPECT_NE(md.find("failed (exit 1, 2 attempts): error: non-finite loss in &lt;block 3&gt; & \"window\" 2"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("skipped hand/notes.json"), std::string::npos);
  EXPECT_EQ(count_of(md, "\n| "), 8u);  // header + 7 rows

  const std::string csv = render_csv(c);
  EXPECT_EQ(csv.rfind("model,recipe,seed,bits_per_weight,ppl_wikitext2,ppl_ptb,zeroshot_mean,zs_arc_easy,zs_piqa,"
                      "kl_wikitext2,kl_ptb,quantize_seconds,wall_seconds,peak_rss_bytes,peak_gpu_bytes,status,error,"
                      "exit_code,attempts,folder\n",
                      0),
            0u)
      << csv;
  EXPECT_NE(csv.find("\nstories260K,test/stories-gptq-w2-pc,0,2.2383,123.9803019,134.6010916,35,15,55,0.2993773312,"
                     "0.3327618818,3.58,42.5,453595136,2147483648,done,,0,2,stories260K__test+stories-gptq-w2-pc__s0\n"),
            std::string::npos)
      << csv;
  // empty cells for missing values, RFC 4180 quoting
  EXPECT_NE(csv.find("\nstories260K,test/stories-sliderquant-w2,0,,,,,,,,,,42.5,,,failed,"
                     "\"error: non-finite loss in <block 3> & \"\"window\"\" 2\",1,2,"),
            std::string::npos)
      << csv;
  EXPECT_NE(csv.find(",\"unreadable: quantize.json: parse error"), std::string::npos) << csv;
  EXPECT_EQ(count_of(csv, "\n"), 8u);
}

TEST_F(Report, HtmlIsSelfContainedEscapedAndPlotsOneSeriesPerRecipe) {
  Collection c = collect_runs(res.string());
  const std::string html = render_html(c);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("7 runs: 5 done, 1 failed"), std::string::npos);
  EXPECT_NE(html.find(res.string()), std::string::npos);
  // no script, no network
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  // every string from the files is escaped
  EXPECT_EQ(html.find("<block 3>"), std::string::npos);
  EXPECT_NE(html.find("non-finite loss in &lt;block 3&gt; &amp; &quot;window&quot; 2"), std::string::npos);
  EXPECT_EQ(html.find("my-<recipe>"), std::string::npos);
  EXPECT_NE(html.find("my-&lt;recipe&gt;"), std::string::npos);
  EXPECT_EQ(count_of(html, "<tr class=\"run\">"), 7u);
  // charts: stories260K x {wikitext2, ptb}, and the unknown model's (hand) x {wikitext2, ptb}
  EXPECT_EQ(count_of(html, "<svg class=\"chart\""), 4u);
  EXPECT_NE(html.find("stories260K \xC2\xB7 wikitext2: perplexity vs bits per weight"), std::string::npos);
  // stories260K / wikitext2: three recipes with bits and a perplexity (the failed run has neither)
  const size_t s0 = html.find("data-model=\"stories260K\" data-dataset=\"wikitext2\"");
  ASSERT_NE(s0, std::string::npos);
  const std::string chart = html.substr(s0, html.find("</svg>", s0) - s0);
  EXPECT_EQ(count_of(chart, "<g class=\"series\""), 3u);
  EXPECT_NE(chart.find("data-series=\"test/stories-gptq-w2-pc\""), std::string::npos);
  EXPECT_NE(chart.find("data-series=\"test/stories-gptq-w4-pc\""), std::string::npos);
  EXPECT_NE(chart.find("data-series=\"test/stories-rtn-w4-pc\""), std::string::npos);
  EXPECT_NE(chart.find("log scale"), std::string::npos);  // 123.98 .. 1500: more than 10x
  EXPECT_EQ(count_of(chart, "<polyline"), 0u);            // one bit width per recipe: points only

  RenderOptions by_method;
  by_method.series = "method";
  const std::string h2 = render_html(c, by_method);
  const size_t m0 = h2.find("data-model=\"stories260K\" data-dataset=\"wikitext2\"");
  const std::string mchart = h2.substr(m0, h2.find("</svg>", m0) - m0);
  EXPECT_EQ(count_of(mchart, "<g class=\"series\""), 2u);  // test/stories-gptq, test/stories-rtn
  EXPECT_EQ(count_of(mchart, "<polyline"), 1u);             // gptq at 2.24 and 4.26 bits
}

TEST(ReportNames, MethodOf) {
  EXPECT_EQ(method_of("gptq-w4g128"), "gptq");
  EXPECT_EQ(method_of("d2quant-w2g128-no-dac"), "d2quant-no-dac");
  EXPECT_EQ(method_of("test/stories-rtn-q4_0"), "test/stories-rtn");
  EXPECT_EQ(method_of("sliderquant-w2a16g128"), "sliderquant");
  EXPECT_EQ(method_of("adaptive-w4a4kv4-gptq"), "adaptive-gptq");
  EXPECT_EQ(method_of("w4"), "w4");
  EXPECT_EQ(html_escape("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
}

TEST_F(Report, CliWritesEachFormatAndFailsClearly) {
  const std::string r = "'" + res.string() + "'";
  for (const char* ext : {"html", "md", "csv"}) {
    const fs::path out = dir / (std::string("report.") + ext);
    Cli cli = run_cli("report " + r + " --out '" + out.string() + "'");
    ASSERT_EQ(cli.code, 0) << cli.out;
    EXPECT_NE(cli.out.find("warning: skipped hand/notes.json"), std::string::npos) << cli.out;
    const std::string text = slurp(out);
    const std::string e = ext;
    const std::string expected = e == "html" ? "<!DOCTYPE html>" : e == "md" ? "# sliderquant report" : "model,recipe,";
    EXPECT_EQ(text.rfind(expected, 0), 0u) << e;
    if (e == "html") {
      EXPECT_NE(text.find("<svg class=\"chart\""), std::string::npos);
    }
  }
  // --format overrides the extension; no temporaries are left
  Cli cli = run_cli("report " + r + " --out '" + (dir / "r.txt").string() + "' --format csv -q");
  ASSERT_EQ(cli.code, 0) << cli.out;
  EXPECT_EQ(slurp(dir / "r.txt").rfind("model,recipe,", 0), 0u);
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();

  cli = run_cli("report '" + (dir / "missing").string() + "' --out '" + (dir / "x.html").string() + "'");
  EXPECT_EQ(cli.code, 1) << cli.out;
  EXPECT_NE(cli.out.find("does not exist"), std::string::npos) << cli.out;
  fs::create_directories(dir / "empty" / "sub");
  write(dir / "empty" / "sub" / "other.json", "{}");
  cli = run_cli("report '" + (dir / "empty").string() + "' --out '" + (dir / "x.html").string() + "'");
  EXPECT_EQ(cli.code, 1) << cli.out;
  EXPECT_NE(cli.out.find("error: no reports in"), std::string::npos) << cli.out;
  cli = run_cli("report " + r + " --out '" + (dir / "no" / "such" / "x.html").string() + "'");
  EXPECT_EQ(cli.code, 1) << cli.out;
  EXPECT_NE(cli.out.find("does not exist"), std::string::npos) << cli.out;
  cli = run_cli("report " + r + " --out '" + (dir / "x.pdf").string() + "'");
  EXPECT_EQ(cli.code, 2) << cli.out;
  EXPECT_NE(cli.out.find("--format html|md|csv"), std::string::npos) << cli.out;
  EXPECT_FALSE(fs::exists(dir / "x.html"));
}

}  // namespace
