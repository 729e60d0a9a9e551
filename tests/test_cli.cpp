// End-to-end tests of the sliderquant executable: exit codes (0 ok, 1 error, 2 usage),
// one-line errors, JSON reports, and the tokenizer module loading inside the CLI process.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "sliderquant/core/util.h"
#include "test_util.h"

using namespace sq;

namespace {

using CliRun = sq::testing::CliResult;
CliRun run(const std::string& args) { return sq::testing::run_cli(args); }

const std::string kModel = std::string(SQ_FIXTURES_DIR) + "/stories260K/hf";
const std::string kText = std::string(SQ_FIXTURES_DIR) + "/text/wikitext2_head.txt";

std::string tmp(const std::string& name) { return sq::testing::fresh_path("cli_" + name); }

int count_lines(const std::string& s) {
  int n = 0;
  for (char ch : s) n += ch == '\n';
  return n;
}

}  // namespace

TEST(Cli, VersionAndHelp) {
  CliRun r = run("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("sliderquant"), std::string::npos);
  for (const char* sub : {"eval", "inspect", "synth", "tokenize"}) {
    CliRun h = run(std::string(sub) + " --help");
    EXPECT_EQ(h.code, 0) << sub;
    EXPECT_NE(h.out.find("Usage"), std::string::npos) << sub;
  }
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(run("").code, 2);
  EXPECT_EQ(run("frobnicate").code, 2);
  EXPECT_EQ(run("eval " + kModel).code, 2);  // --ppl missing
  EXPECT_EQ(run("eval " + kModel + " --ppl " + kText + " --seqlen 1").code, 2);
  EXPECT_EQ(run("eval " + kModel + " --ppl " + kText + " --device tpu").code, 2);
  EXPECT_EQ(run("eval " + kModel + " --ppl " + kText + " --dtype int7").code, 2);
}

TEST(Cli, EvalWritesReport) {
  std::string json = tmp("eval.json");
  CliRun r = run("eval " + kModel + " --ppl " + kText + " --seqlen 256 --quiet --json " + json);
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(read_file(json));
  ASSERT_EQ(j["perplexity"].size(), 1u);
  const auto& p = j["perplexity"][0];
  EXPECT_EQ(p["protocol"], "gptq");
  EXPECT_EQ(p["seqlen"], 256);
  EXPECT_EQ(p["windows"], 46);
  EXPECT_EQ(p["bos"], true);
  EXPECT_EQ(p["sha256"], sha256_file(kText));
  EXPECT_NEAR(p["ppl"].get<double>(), 106.2842, 0.01);
  EXPECT_EQ(j["dtype"], "float32");
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_GT(p["tokens_per_second"].get<double>(), 0.0);
  EXPECT_NE(r.out.find("106.28"), std::string::npos) << r.out;  // the console table
  // seqlen larger than the model's context (512) is capped
  CliRun c = run("eval " + kModel + " --ppl " + kText + " --seqlen 4096 --quiet --json " + json);
  ASSERT_EQ(c.code, 0) << c.out;
  EXPECT_EQ(nlohmann::json::parse(read_file(json))["perplexity"][0]["seqlen"], 512);
}

TEST(Cli, ErrorsAreOneLineAndExitOne) {
  std::string dir = tmp("errs");
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  struct Case {
    std::string args, needle;
  };
  write_file_atomic(dir + "/bad.safetensors", std::string("\x10\x00\x00\x00\x00\x00\x00\x00{oops", 13));
  std::vector<Case> cases = {
      {"eval /nonexistent/model --ppl wikitext2", "/nonexistent/model"},
      {"eval " + kModel + " --ppl " + kText + " --json /nonexistent/dir/r.json", "/nonexistent/dir"},
      {"inspect " + dir, "config.json"},
      {"inspect " + dir + "/bad.safetensors", "not a GGUF file"},
  };
  for (const Case& c : cases) {
    CliRun r = run(c.args);
    EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out;
    EXPECT_EQ(count_lines(r.out), 1) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find("error: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << c.args << "\n" << r.out;
  }
  // An unknown architecture names itself and the supported ones.
  std::string m = dir + "/neox";
  ASSERT_EQ(std::system(("mkdir -p " + m).c_str()), 0);
  write_file_atomic(m + "/config.json", R"({"architectures": ["GPTNeoXForCausalLM"]})");
  CliRun r = run("inspect " + m);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("GPTNeoXForCausalLM"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MistralForCausalLM"), std::string::npos) << r.out;
  // A corrupt weights file: one line naming the file.
  std::string cm = dir + "/corrupt";
  ASSERT_EQ(std::system(("mkdir -p " + cm + " && cp " + kModel + "/config.json " + kModel + "/tokenizer.model " +
                         cm + "/ && head -c 5000 " + kModel + "/model.safetensors > " + cm + "/model.safetensors")
                            .c_str()),
            0);
  r = run("eval " + cm + " --ppl " + kText);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find(cm + "/model.safetensors"), std::string::npos) << r.out;
}

TEST(Cli, TokenizeInsideTheCliProcess) {
  auto j = nlohmann::json::parse(read_file(std::string(SQ_FIXTURES_DIR) + "/stories260K/reference/prompt1.json"));
  std::string prompt = j["prompt"];
  std::string file = tmp("prompt.txt");
  write_file_atomic(file, prompt);
  CliRun r = run("tokenize " + kModel + " --json < " + file);
  ASSERT_EQ(r.code, 0) << r.out;
  auto out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["ids"], j["prompt_ids"]);
}

TEST(Cli, SynthInspectEvalRoundTrip) {
  std::string d = tmp("synth");
  CliRun s = run("synth " + d + " --preset tiny --family qwen3 --seed 4 --shard-size-mb 1 --tokenizer " + kModel +
              " --quiet");
  ASSERT_EQ(s.code, 0) << s.out;
  EXPECT_EQ(run("synth " + d + " --preset tiny --quiet").code, 2);  // exists, no --force
  std::string json = tmp("inspect.json");
  CliRun i = run("inspect " + d + " --json " + json);
  ASSERT_EQ(i.code, 0) << i.out;
  auto j = nlohmann::json::parse(read_file(json));
  EXPECT_EQ(j["architecture"], "Qwen3ForCausalLM");
  EXPECT_EQ(j["parameters"], j["stored_parameters"]);
  EXPECT_NEAR(j["bits_per_weight"].get<double>(), 16.0, 1e-9);
  CliRun e = run("eval " + d + " --ppl " + kText + " --seqlen 128 --max-windows 4 --quiet");
  ASSERT_EQ(e.code, 0) << e.out;
}
