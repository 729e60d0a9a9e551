// Tests of what keeps outputs whole and inputs honest: core/fs (atomic replacement, stale
// temporaries, locks, content fingerprints, source/output overlap), config ranges, NaN/Inf
// refused at load, and the CLI's behaviour around them (locked outputs, resume identity,
// outputs inside the model, readable option errors, exit codes).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/fs.h"
#include "sliderquant/core/interrupt.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/model/arch.h"
#include "sliderquant/pipeline/recipe.h"
#include "test_util.h"

using namespace sq;
using namespace sq::testing;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> r;
  for (const auto& e : fs::directory_iterator(dir)) r.push_back(e.path().filename().string());
  std::sort(r.begin(), r.end());
  return r;
}

// A copy of stories260K in DIR (config, weights, tokenizer).
void copy_model(const std::string& dir) {
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kStoriesModel))
    fs::copy_file(e.path(), fs::path(dir) / e.path().filename(), fs::copy_options::overwrite_existing);
}

std::string hostname() {
  char buf[256] = {0};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// A pid that is certainly not running: a child that has exited and been reaped.
pid_t dead_pid() {
  pid_t p = ::fork();
  if (p == 0) _exit(0);
  int st = 0;
  ::waitpid(p, &st, 0);
  return p;
}

}  // namespace

TEST(Fs, ReplacePathKeepsACompleteOutputAndLeavesNothing) {
  const std::string d = fresh_path("fs_replace", true);
  const std::string out = d + "/out", tmp = temp_sibling(out);
  fs::create_directories(out);
  write_file_atomic(out + "/old.txt", "old");
  fs::create_directories(tmp);
  write_file_atomic(tmp + "/new.txt", "new");
  replace_path(tmp, out);
  EXPECT_EQ(names_in(out), std::vector<std::string>{"new.txt"});
  EXPECT_EQ(names_in(d), std::vector<std::string>{"out"});  // the old content went with the temporary
  // A file replacing a file, and a first write.
  write_file_atomic(d + "/f.tmp", "2");
  replace_path(d + "/f.tmp", d + "/f");
  EXPECT_EQ(read_file(d + "/f"), "2");
  EXPECT_THROW(replace_path(d + "/missing", d + "/g"), Error);
}

TEST(Fs, StaleTemporariesOfDeadRunsAreRemovedOthersKept) {
  const std::string d = fresh_path("fs_stale", true);
  const std::string out = d + "/model";
  const std::string me = hostname();
  const std::string dead = out + ".tmp." + me + "." + std::to_string(dead_pid());
  const std::string dead_old_style = out + ".tmp." + std::to_string(dead_pid());
  const std::string live = out + ".tmp." + me + "." + std::to_string(::getpid());
  const std::string other_host = out + ".tmp.some-other-node." + std::to_string(dead_pid());
  const std::string unrelated = out + "x.tmp." + me + "." + std::to_string(dead_pid());
  for (const std::string& p : {dead, dead_old_style, live, other_host, unrelated}) {
    fs::create_directories(p);
    write_file_atomic(p + "/w", "x");
  }
  std::vector<std::string> removed = remove_stale_temps(out);
  EXPECT_EQ(removed.size(), 2u);
  EXPECT_FALSE(path_exists(dead));
  EXPECT_FALSE(path_exists(dead_old_style));
  EXPECT_TRUE(path_exists(live));        // a running process's
  EXPECT_TRUE(path_exists(other_host));  // another node's, on a shared file system
  EXPECT_TRUE(path_exists(unrelated));
}

TEST(Fs, SameOrInside) {
  const std::string d = fresh_path("fs_inside", true);
  fs::create_directories(d + "/m/sub");
  fs::create_directory_symlink(d + "/m", d + "/link");
  EXPECT_TRUE(same_or_inside(d + "/m", d + "/m"));
  EXPECT_TRUE(same_or_inside(d + "/m/", d + "/m"));
  EXPECT_TRUE(same_or_inside(d + "/m/sub/new", d + "/m"));
  EXPECT_TRUE(same_or_inside(d + "/m/../m/x", d + "/m"));
  EXPECT_TRUE(same_or_inside(d + "/link/out", d + "/m"));  // through a symlink
  EXPECT_FALSE(same_or_inside(d + "/m2", d + "/m"));       // a prefix of the name only
  EXPECT_FALSE(same_or_inside(d, d + "/m"));
}

TEST(Fs, LockRefusesASecondHolderAndNamesThePid) {
  const std::string d = fresh_path("fs_lock", true);
  FileLock a = FileLock::acquire(d + "/lock", "output X");
  const std::string msg = error_of([&] { FileLock b = FileLock::acquire(d + "/lock", "output X"); });
  EXPECT_NE(msg.find("output X is in use by pid " + std::to_string(::getpid())), std::string::npos) << msg;
  a = FileLock();
  FileLock c = FileLock::acquire(d + "/lock", "output X");  // released with its holder
  EXPECT_TRUE(c.held());
}

TEST(Fs, ContentFingerprintSeesChangesOfEqualSize) {
  const std::string d = fresh_path("fs_fp", true);
  setenv("SQ_CACHE_DIR", (d + "/cache").c_str(), 1);
  fs::create_directories(d + "/m");
  write_file_atomic(d + "/m/w.bin", "aaaa");
  const nlohmann::json a = content_fingerprint(d + "/m");
  EXPECT_EQ(a["w.bin"]["sha256"], sha256_hex(std::string("aaaa")));
  EXPECT_TRUE(path_exists(d + "/cache/fingerprints.json"));
  EXPECT_EQ(content_fingerprint(d + "/m"), a);  // from the cache
  {
    std::fstream f(d + "/m/w.bin", std::ios::in | std::ios::out | std::ios::binary);  // in place, same size
    f.seekp(1);
    f.write("b", 1);
  }
  const nlohmann::json b = content_fingerprint(d + "/m");
  EXPECT_EQ(b["w.bin"]["sha256"], sha256_hex(std::string("abaa")));
  unsetenv("SQ_CACHE_DIR");
}

TEST(ConfigRanges, ValuesOutsideTheirRangeAreRefused) {
  const std::string base = read_file(kStoriesModel + "/config.json");
  auto err = [&](const char* key, const nlohmann::json& v) {
    nlohmann::json j = nlohmann::json::parse(base);
    j[key] = v;
    return error_of([&] { parse_model_config(j.dump(), "cfg.json"); });
  };
  EXPECT_NE(err("rope_theta", -1).find("cfg.json: rope_theta must be a positive number"), std::string::npos);
  EXPECT_NE(err("rope_theta", 0).find("rope_theta"), std::string::npos);
  EXPECT_NE(err("rms_norm_eps", 0).find("rms_norm_eps"), std::string::npos);
  EXPECT_NE(err("max_position_embeddings", 0).find("max_position_embeddings"), std::string::npos);
  EXPECT_NE(err("num_attention_heads", 5).find("num_attention_heads"), std::string::npos);
  EXPECT_NE(err("hidden_size", -64).find("must be positive"), std::string::npos);
  EXPECT_NE(err("hidden_act", 3).find("key 'hidden_act' must be a string"), std::string::npos);
  EXPECT_NE(err("eos_token_id", nlohmann::json::array({1, "x"})).find("eos_token_id"), std::string::npos);
  EXPECT_EQ(err("rope_theta", 500000.0), "<no error>");
}

TEST(CliReliability, NonFiniteWeightsAreRefusedNamingFileAndTensor) {
  const std::string d = fresh_path("nan_model", true);
  copy_model(d + "/m");
  Checkpoint ck = Checkpoint::open(d + "/m");
  NamedTensors ts;
  for (const std::string& n : ck.names()) {
    at::Tensor t = ck.get(n).clone();
    if (n == "model.embed_tokens.weight") t.index_put_({3, 5}, std::nan(""));
    ts.emplace_back(n, t);
  }
  write_safetensors(d + "/m/model.safetensors", ts, {{"format", "pt"}});
  for (const std::string& cmd : {"eval '" + d + "/m' --ppl " + kWikiText + " --max-windows 1",
                                 "quantize '" + d + "/m' --recipe rtn-w4g128 --out '" + d + "/q'",
                                 "inspect --check '" + d + "/m'"}) {
    CliResult r = run_cli(cmd);
    EXPECT_EQ(r.code, 1) << cmd << "\n" << r.out;
    EXPECT_NE(r.out.find("tensor model.embed_tokens.weight in " + d + "/m/model.safetensors holds NaN or Inf"),
              std::string::npos)
        << r.out;
  }
  EXPECT_EQ(names_in(d), std::vector<std::string>{"m"});  // no output, no work directory, no temporary
  CliResult ok = run_cli("inspect --check " + kStoriesModel);
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_NE(ok.out.find("check          ok"), std::string::npos) << ok.out;
}

TEST(CliReliability, GarbageTokenizerIsNamedWithoutLibraryInternals) {
  const std::string d = fresh_path("bad_tok", true);
  copy_model(d + "/m");
  write_file_atomic(d + "/m/tokenizer.model", std::string(300, '\x07'));
  CliResult r = run_cli("inspect --check '" + d + "/m'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(d + "/m/tokenizer.model: the file is not a SentencePiece model"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(".cc("), std::string::npos) << r.out;
}

TEST(CliReliability, OutputInsideOrAroundTheModelIsRefused) {
  const std::string d = fresh_path("out_in_model", true);
  copy_model(d + "/m");
  const std::vector<std::string> before = names_in(d + "/m");
  for (const std::string& args : {"--out '" + d + "/m' --force", "--out '" + d + "/m/q'", "--out '" + d + "/m/../m/'",
                                  "--out '" + d + "/x' --work '" + d + "/m'", "--out '" + d + "' --force"}) {
    CliResult r = run_cli("quantize '" + d + "/m' --recipe rtn-w4g128 " + args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find("write elsewhere"), std::string::npos) << r.out;
  }
  EXPECT_EQ(names_in(d + "/m"), before);
  CliResult c = run_cli("convert '" + d + "/m/model.safetensors' --out '" + d + "/m/sub'");
  EXPECT_NE(c.code, 0) << c.out;
}

TEST(CliReliability, ASecondRunOnTheSameOutputIsRefusedWhileTheFirstHoldsIt) {
  const std::string d = fresh_path("locked", true);
  fs::create_directories(d + "/q.work");
  FileLock held = FileLock::acquire(d + "/q.work/lock", "output " + d + "/q");  // as a running quantize holds it
  CliResult r = run_cli("quantize " + kStoriesModel + " --recipe rtn-w4g128 --out '" + d + "/q'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("is in use by pid " + std::to_string(::getpid())), std::string::npos) << r.out;
  EXPECT_FALSE(path_exists(d + "/q"));
  held = FileLock();
  CliResult ok = run_cli("quantize " + kStoriesModel + " --recipe rtn-w4g128 -q --out '" + d + "/q'");
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_EQ(names_in(d), std::vector<std::string>{"q"});  // the work directory went with success
}

TEST(CliReliability, ForceReplacesWithoutAGapAndCleansDeadRunsDebris) {
  const std::string d = fresh_path("force", true);
  const std::string debris = d + "/q.tmp." + hostname() + "." + std::to_string(dead_pid());
  fs::create_directories(debris);
  ASSERT_EQ(run_cli("quantize " + kStoriesModel + " --recipe rtn-w4g128 -q --out '" + d + "/q'").code, 0);
  EXPECT_FALSE(path_exists(debris));
  const std::string first = sha256_file(d + "/q/model.safetensors");
  CliResult r = run_cli("quantize " + kStoriesModel + " --recipe rtn-w2g64 -q --force --out '" + d + "/q'");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(sha256_file(d + "/q/model.safetensors"), first);
  EXPECT_EQ(names_in(d), std::vector<std::string>{"q"});
}

TEST(CliReliability, ResumeOnlyFromTheSameInputs) {
  const std::string d = fresh_path("resume_identity", true);
  copy_model(d + "/m");
  const std::string cmd = "quantize '" + d + "/m' --recipe gptq-w4g128 --calib " + kWikiText +
                          " --samples 2 --seqlen 64 --keep-work --out '" + d + "/q'";
  CliResult first = run_cli(cmd);
  ASSERT_EQ(first.code, 0) << first.out;
  ASSERT_TRUE(path_exists(d + "/q.work/state.json"));
  // Same inputs: resumed.
  CliResult again = run_cli(cmd + " --force");
  EXPECT_EQ(again.code, 0) << again.out;
  EXPECT_NE(again.out.find("resuming from"), std::string::npos) << again.out;
  // The weights changed in place (a norm scaled): not resumed, and the change is named.
  Checkpoint ck = Checkpoint::open(d + "/m");
  NamedTensors ts;
  for (const std::string& n : ck.names()) {
    at::Tensor t = ck.get(n).clone();
    if (n == "model.norm.weight") t.mul_(1.5);
    ts.emplace_back(n, t);
  }
  write_safetensors(d + "/m/model.safetensors", ts, {{"format", "pt"}});
  CliResult strict = run_cli(cmd + " --force --resume-strict");
  EXPECT_EQ(strict.code, 1) << strict.out;
  EXPECT_NE(strict.out.find("changed: inputs/model/model.safetensors"), std::string::npos) << strict.out;
  EXPECT_NE(strict.out.find("rm -r -- '" + d + "/q.work'"), std::string::npos) << strict.out;
  CliResult over = run_cli(cmd + " --force");
  EXPECT_EQ(over.code, 0) << over.out;
  EXPECT_EQ(over.out.find("resuming from"), std::string::npos) << over.out;
  EXPECT_NE(over.out.find("starting over"), std::string::npos) << over.out;
  // A damaged checkpoint is named, with the command that clears it.
  write_file_atomic(d + "/q.work/state.json", "{\"identity\": ");
  CliResult damaged = run_cli(cmd + " --force");
  EXPECT_EQ(damaged.code, 1) << damaged.out;
  EXPECT_NE(damaged.out.find("the checkpoint " + d + "/q.work/state.json is damaged"), std::string::npos)
      << damaged.out;
  EXPECT_TRUE(path_exists(d + "/q.work"));  // kept: the user decides
}

// A scheduler's warning signal (Slurm's --signal=B:USR1@120, a preemption's SIGTERM): the run
// stops at the next checkpoint with exit code 75 and the same command resumes it to the same
// tensors as an uninterrupted run. The signal is a real SIGUSR1, raised by the test hook at the
// 2nd checkpoint so the test cannot race the run.
TEST(CliReliability, ASignalStopsAtACheckpointAndTheSameCommandResumesToTheSameModel) {
  const std::string d = fresh_path("preempt", true);
  auto cmd = [&](const std::string& out) {
    return "quantize " + kStoriesModel + " --recipe gptq-w4g128 --calib " + kWikiText +
           " --samples 2 --seqlen 64 --out '" + d + "/" + out + "'";
  };
  CliResult full = run_cli(cmd("full"));
  ASSERT_EQ(full.code, 0) << full.out;
  CliResult stopped = run_cli(cmd("q"), "SQ_TEST_SIGNAL_AT_CHECKPOINT=2");
  EXPECT_EQ(stopped.code, kPreemptedExitCode) << stopped.out;
  EXPECT_NE(stopped.out.find("SIGUSR1 received: stopping at the next checkpoint"), std::string::npos) << stopped.out;
  EXPECT_NE(stopped.out.find("preempted: stopped by SIGUSR1 after block 2 of 5; the checkpoint is in " + d +
                             "/q.work: run the same command again to resume"),
            std::string::npos)
      << stopped.out;
  EXPECT_FALSE(path_exists(d + "/q"));  // nothing at the final path
  auto st = nlohmann::json::parse(read_file(d + "/q.work/state.json"));
  EXPECT_EQ(st["blocks_done"], 2);
  CliResult resumed = run_cli(cmd("q"));
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("resuming from " + d + "/q.work: 2 block(s) already quantized"), std::string::npos)
      << resumed.out;
  EXPECT_EQ(sha256_file(d + "/q/model.safetensors"), sha256_file(d + "/full/model.safetensors"));
  EXPECT_FALSE(path_exists(d + "/q.work"));
  // A learned pass stops after a window stage the same way.
  const std::string sq = "quantize " + kStoriesModel + " --recipe test/stories-sliderquant-w2 --calib " + kWikiText +
                         " --samples 4 --seqlen 32 --out '" + d + "/w'";
  CliResult wstop = run_cli(sq, "SQ_TEST_SIGNAL_AT_CHECKPOINT=1");
  EXPECT_EQ(wstop.code, kPreemptedExitCode) << wstop.out;
  EXPECT_NE(wstop.out.find("window stage 1 of"), std::string::npos) << wstop.out;
  EXPECT_TRUE(path_exists(d + "/w.work/windows.json"));
}

// --device: a malformed name is a usage error; a CUDA device this build or machine cannot give
// is one line saying which of the two it is (the CUDA build check runs the same on the CPU).
TEST(CliReliability, DeviceErrorsSayWhatIsMissing) {
  const std::string ev = "eval " + kStoriesModel + " --ppl " + kWikiText + " --max-windows 1 --device ";
  CliResult bad = run_cli(ev + "gpu0");
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_NE(bad.out.find("unknown device 'gpu0' (use auto, cpu, cuda or cuda:N)"), std::string::npos) << bad.out;
  CliResult far = run_cli(ev + "cuda:63");
  EXPECT_EQ(far.code, 1) << far.out;
#ifdef SQ_HAVE_CUDA_LIBS
  const bool gpu = std::system("nvidia-smi -L >/dev/null 2>&1") == 0;
  const std::string why = gpu ? "CUDA device(s) visible (CUDA_VISIBLE_DEVICES renumbers them from 0)"
                              : "sees no CUDA device (no GPU or no driver here)";
#else
  const std::string why = "is built without CUDA (see README: the CUDA build)";
#endif
  EXPECT_NE(far.out.find("error: --device cuda:63 "), std::string::npos) << far.out;
  EXPECT_NE(far.out.find(why), std::string::npos) << far.out;
  CliResult cpu = run_cli(ev + "cpu");
  EXPECT_EQ(cpu.code, 0) << cpu.out;
}

TEST(CliReliability, OptionErrorsAreReadableAndExitCodesFollowTheReadme) {
  struct Case {
    std::string args;
    int code;
    std::string says;
  };
  const std::string m = kStoriesModel;
  const std::vector<Case> cases = {
      {"eval " + m + " --tasks piqa --limit abc", 2, "--limit: expected an integer >= 0, got 'abc'"},
      {"eval " + m + " --ppl x --max-windows -3", 2, "--max-windows: expected an integer >= 0, got '-3'"},
      {"quantize " + m + " --recipe rtn-w4g128 --out /tmp/x --seqlen 1", 2, "--seqlen: expected an integer in [2"},
      {"eval " + m + " --nosuchoption", 2, "nosuchoption"},
      {"eval " + m + " --ppl nosuchset", 2, "unknown dataset 'nosuchset'"},
      {"eval " + m + " --tasks nosuch", 2, "unknown zero-shot task 'nosuch'"},
      {"quantize " + m + " --recipe nosuch --out /tmp/x", 2, "recipe nosuch not found"},
      {"quantize " + m + " --recipe rtn-w4g128 --out " + m, 2, "write elsewhere"},
      {"quantize " + m + " --recipe rtn-w4g128 --out /tmp/x --format nosuch", 2, "unknown model format 'nosuch'"},
      {"eval " + m + " --ppl x --dtype int3", 2, "unknown dtype 'int3'"},
      {"eval /nonexistent/model --ppl wikitext2", 1, "/nonexistent/model"},
      {"inspect " + std::string(SQ_FIXTURES_DIR) + "/text", 1, "config.json"},
  };
  for (const Case& c : cases) {
    CliResult r = run_cli(c.args);
    EXPECT_EQ(r.code, c.code) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.args << "\n" << r.out;
    EXPECT_EQ(r.out.find("179769313486231570"), std::string::npos) << r.out;  // CLI11's double range text
  }
}

// A full disk: a 300 KiB tmpfs (this needs the mount privilege the test machines give root;
// without it the test fails, it does not skip). The output (2 MB) cannot fit: one error line
// naming the file and ENOSPC, exit 1, nothing left on the small file system.
TEST(CliReliability, DiskFullIsOneClearErrorAndLeavesNoDebris) {
  const std::string d = fresh_path("diskfull", true);
  ASSERT_EQ(::mount("tmpfs", d.c_str(), "tmpfs", 0, "size=300k"), 0)
      << "cannot mount a tmpfs on " << d << ": " << std::strerror(errno) << " (the disk-full test needs root)";
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{d};
  for (const std::string& args : {"--recipe rtn-w4g128 --out '" + d + "/q'",
                                  "--recipe gptq-w4g128 --calib " + kWikiText + " --samples 2 --seqlen 64 --out '" +
                                      d + "/g'"}) {
    CliResult r = run_cli("quantize " + kStoriesModel + " " + args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
    EXPECT_NE(r.out.find("No space left on device"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("error: cannot write " + d + "/"), std::string::npos) << r.out;
    // Nothing partial: no output, no temporary; a work directory only when it holds finished
    // checkpoints to resume from once there is space (and the run said so).
    for (const std::string& n : names_in(d)) {
      EXPECT_EQ(n, "g.work") << args;
      EXPECT_NE(r.out.find("kept " + d + "/g.work for a resume"), std::string::npos) << r.out;
      for (const std::string& w : names_in(d + "/" + n)) EXPECT_EQ(w.find(".tmp."), std::string::npos) << w;
    }
  }
}

TEST(RecipeErrors, NameFileKeyAndExpectedType) {
  auto err = [](const std::string& text) { return error_of([&] { parse_recipe(text, "r.json"); }); };
  EXPECT_EQ(err(R"({"format":"w4","calibration":{"samples":"abc"},"pipeline":[{"pass":"gptq"}]})"),
            "r.json calibration: key 'samples' must be an integer");
  EXPECT_EQ(err(R"({"format":"w4","calibration":{"seed":-1},"pipeline":[{"pass":"gptq"}]})"),
            "r.json calibration: key 'seed' must be a non-negative integer");
  EXPECT_EQ(err(R"({"name":3,"format":"w4","pipeline":[{"pass":"rtn"}]})"), "r.json: key 'name' must be a string");
  EXPECT_EQ(err(R"({"format":"w4","pipeline":[{"pass":"gptq","options":{"damp":"x"}}]})"),
            "r.json pipeline[0].options: key 'damp' must be of type number (got \"x\")");
}

// recipe check (and quantize, before any work) catch what would otherwise fail or be wasted
// after calibrating: passes in an order that cannot work or whose codes a later pass replaces,
// and a ratio budget the model cannot reach.
TEST(RecipeErrors, PassOrderAndRatioBudgetsAreCheckedBeforeAnyWork) {
  const std::string d = fresh_path("recipe_checks", true);
  auto recipe = [&](const std::string& name, const std::string& pipeline) {
    const std::string path = d + "/" + name + ".json";
    write_file_atomic(path, R"({"name": ")" + name + R"(", "format": "w2", "calibration": {"dataset": "c4-2k",
      "samples": 4, "seqlen": 64}, "pipeline": )" + pipeline + "}");
    return path;
  };
  const std::string m = " --model " + kStoriesModel;
  const std::string ratio = R"({"pass": "ratio", "options": {"score": "hessian", "quantizer": "rtn", "target_bits": )";
  struct Case {
    std::string name, pipeline;
    int code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"twice", R"([{"pass": "rtn"}, {"pass": "gptq"}])", 1,
       "pipeline[0] (rtn) is discarded: " + d + "/twice.json pipeline[1] (gptq) quantizes the same linears again "
       "from their full-precision weights; remove rtn from the pipeline"},
      {"late_ratio", R"([{"pass": "gptq"}, )" + ratio + "2.6}}]", 1,
       "pipeline[1] (ratio) needs linears no pass has quantized yet, but " + d +
           "/late_ratio.json pipeline[0] (gptq) quantizes them first: put ratio first"},
      {"replaced", R"([{"pass": "adaptive", "options": {"epochs": 1, "search_epochs": 1, "weights": "rtn"}},
                      {"pass": "gptq"}])", 0,
       "warning      " + d + "/replaced.json pipeline[0] (adaptive): its weight codes are replaced by " + d +
           "/replaced.json pipeline[1] (gptq)'s; only its other effects"},
      {"no_codes", R"([{"pass": "adaptive", "options": {"epochs": 1, "search_epochs": 1, "weights": "none"}}])", 0,
       "no pass writes weight codes, so the weights stay in full precision"},
      {"too_low", "[" + ratio + "1.0}}]", 1,
       "pipeline[0] (ratio): target_bits 1 is below the cheapest assignment of the ratios; feasible budgets are ["},
      {"unbound", "[" + ratio + "8.0}}]", 0, "does not bind: every linear can take its largest ratio"},
      {"fine", "[" + ratio + "2.7}}]", 0, "bits per weight"},
  };
  for (const Case& c : cases) {
    const std::string path = recipe(c.name, c.pipeline);
    CliResult r = run_cli("recipe check " + path + m);
    EXPECT_EQ(r.code, c.code) << c.name << "\n" << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.name << "\n" << r.out;
    if (c.name == "fine") {
      EXPECT_EQ(r.out.find("warning"), std::string::npos) << r.out;
    }
    if (c.code == 0) continue;
    // quantize stops at the same check, before calibrating: nothing written.
    CliResult q = run_cli("quantize " + kStoriesModel + " --recipe " + path + " --calib " + kWikiText +
                          " --out '" + d + "/out_" + c.name + "'");
    EXPECT_EQ(q.code, 1) << q.out;
    EXPECT_NE(q.out.find(c.says), std::string::npos) << q.out;
    EXPECT_EQ(q.out.find("calibration:"), std::string::npos) << q.out;
    EXPECT_FALSE(path_exists(d + "/out_" + c.name));
    EXPECT_FALSE(path_exists(d + "/out_" + c.name + ".work"));
  }
  // Without a model the order checks still run.
  CliResult r = run_cli("recipe check " + d + "/twice.json");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("(rtn) is discarded"), std::string::npos) << r.out;
}

// --ppl and --eval take comma-separated lists; a text file whose name holds commas is taken
// whole when it exists.
TEST(CliReliability, ATextFileWithCommasInItsNameIsOneDataset) {
  const std::string d = fresh_path("comma_paths", true);
  const std::string text = d + "/wiki,head,v2.txt";
  write_file_atomic(text, read_file(kWikiText));
  CliResult one = run_cli("eval " + kStoriesModel + " --ppl '" + text + "' --max-windows 1");
  EXPECT_EQ(one.code, 0) << one.out;
  EXPECT_NE(one.out.find("wiki,head,v2.txt"), std::string::npos) << one.out;
  EXPECT_EQ(one.out.find("unknown dataset"), std::string::npos) << one.out;
  CliResult two = run_cli("eval " + kStoriesModel + " --ppl '" + kWikiText + "," + text + "' --max-windows 1");
  EXPECT_EQ(two.code, 0) << two.out;
  EXPECT_NE(two.out.find("wikitext2_head.txt"), std::string::npos) << two.out;
  EXPECT_NE(two.out.find("wiki,head,v2.txt"), std::string::npos) << two.out;
}

// Inputs the fuzzers (fuzz/, bench/fuzz.sh) found to reach undefined behaviour or a huge
// allocation, kept as regressions: each is now one Error naming what is wrong.
TEST(FuzzFindings, EachIsAnErrorNamingWhatIsWrong) {
  const std::string d = fresh_path("fuzz_findings", true);
  // safetensors: a shape whose running element count passes INT64_MAX before a zero dimension.
  {
    const std::string header = R"({"a":{"dtype":"F32","shape":[9223372036854775807,2,0],"data_offsets":[0,0]}})";
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char(uint8_t(uint64_t(header.size()) >> (8 * i)));
    write_file_atomic(d + "/n.safetensors", bytes + header);
    EXPECT_NE(error_of([&] { SafetensorsFile::open(d + "/n.safetensors"); }).find("overflowing"), std::string::npos);
  }
  // tokenizer.json: an id far beyond the vocabulary (a 16 GB table), and a 73-digit id.
  auto tok_err = [&](const std::string& vocab_tail) {
    fs::create_directories(d + "/tok");
    write_file_atomic(d + "/tok/tokenizer.json",
                      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1)" + vocab_tail + R"(}, "merges": []}})");
    return error_of([&] { load_tokenizer(d + "/tok/tokenizer.json"); });
  };
  EXPECT_NE(tok_err(R"(, "big": 2000000000)").find("far beyond the 3 tokens listed"), std::string::npos)
      << tok_err(R"(, "big": 2000000000)");
  EXPECT_NE(tok_err(R"(, "c": 1e73)").find("vocab entry c: the id must be a non-negative integer below 2^31"),
            std::string::npos)
      << tok_err(R"(, "c": 1e73)");
  EXPECT_EQ(tok_err(R"(, "c": 2)"), "<no error>");
  // Pass options: an integer option given a 41-digit number, or one that wraps a 32-bit int.
  for (const char* v : {"18888888888888888888888888888888888888828", "4294967424", "1e300", "-1e300"}) {
    const std::string e = error_of([&] {
      parse_recipe(std::string(R"({"format":"w4","pipeline":[{"pass":"gptq","options":{"block_size":)") + v + "}}]}",
                   "r.json");
    });
    EXPECT_NE(e.find("r.json pipeline[0].options: key 'block_size' must be of type int"), std::string::npos) << v << ": " << e;
  }
  // config.json: sizes whose parameter count overflows int64.
  nlohmann::json cfg = nlohmann::json::parse(read_file(kStoriesModel + "/config.json"));
  cfg["hidden_size"] = int64_t(1) << 62;
  cfg["intermediate_size"] = int64_t(1) << 62;
  EXPECT_NE(error_of([&] { parse_model_config(cfg.dump(), "c.json"); }).find("c.json: hidden_size 4611686018427387904 is beyond"),
            std::string::npos);
}
