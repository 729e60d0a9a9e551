// tools/main: the sliderquant command line (CLI11): subcommands, their options and help
// text, and the mapping of errors to exit codes (0 ok, 1 error, 2 usage error).
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "commands.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/interrupt.h"
#include "sliderquant/core/torch_compat.h"
#include "sliderquant/core/util.h"
#include "sliderquant/model/arch.h"
#include "sliderquant/model/synthetic.h"

using namespace sq;

namespace {

// Integer option values, strictly: "--limit: expected an integer >= 0, got 'abc'" instead of
// CLI11's floating-point range messages.
CLI::Validator int_in(int64_t lo, int64_t hi) {
  std::string what = hi == INT64_MAX ? "an integer >= " + std::to_string(lo)
                                     : "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [lo, hi, what](std::string& s) -> std::string {
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || end == nullptr || *end != 0 || errno == ERANGE || v < lo || v > hi)
          return "expected " + what + ", got '" + s + "'";
        return "";
      },
      hi == INT64_MAX ? "INT>=" + std::to_string(lo) : "INT in [" + std::to_string(lo) + "-" + std::to_string(hi) + "]");
}

}  // namespace

int main(int argc, char** argv) {
  sq::tune_allocator();  // before anything allocates in bulk (src/core/util.cpp says why)
  // Family, architecture and preset lists come from the registries (src/arch/registry.cpp,
  // model/synthetic.h), so the help text cannot go stale.
  std::string families, presets;
  for (const ArchSpec* a : arch_registry()) families += (families.empty() ? "" : ", ") + a->family;
  for (const std::string& p : synthetic_presets()) presets += (presets.empty() ? "" : ", ") + p;
  CLI::App app{"sliderquant: post-training quantization of LLM checkpoints, and what it costs.\n"
               "Reads Hugging Face model directories (config.json + safetensors) of the architectures\n" +
                   supported_architectures() + ", on CPU or CUDA.",
               "sliderquant"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("sliderquant ") + SQ_VERSION + " (libtorch " +
                                        torch_version_string() + ")");
  cli::CommonArgs common;
  auto add_common = [&](CLI::App* sub) {
    sub->add_flag("-q,--quiet", common.quiet, "no progress or info messages on stderr");
    sub->add_flag("-v,--verbose", common.verbose, "also debug messages (per-window losses, ...) on stderr");
    sub->add_option("--threads", common.threads, "CPU threads for libtorch (default: libtorch's choice)")
        ->check(int_in(0, INT64_MAX));
  };

  // ---- eval
  cli::EvalArgs ev;
  CLI::App* eval = app.add_subcommand("eval", "measure perplexity (GPTQ protocol), zero-shot accuracy (lm-eval 0-shot) "
                                                 "and KL divergence from a base model");
  eval->add_option("model", ev.model, "model directory (config.json + safetensors + tokenizer), or a .gguf file")->required();
  eval->add_option("--ppl", ev.ppl,
                   "perplexity datasets, comma-separated: wikitext2, ptb, c4-2k, or paths of text files");
  eval->add_option("--tasks", ev.tasks,
                   "zero-shot tasks (lm-eval 0-shot), comma-separated: piqa, arc_easy, arc_challenge, hellaswag, "
                   "winogrande, boolq, lambada_openai, or all");
  eval->add_option("--limit", ev.limit, "score only the first N documents of each task (0 = all)")
      ->capture_default_str()->check(int_in(0, INT64_MAX));
  eval->add_option("--zs-batch-size", ev.zs_batch_size, "zero-shot sequences per forward pass")
      ->capture_default_str()->check(int_in(1, 4096));
  eval->add_option("--zs-bos", ev.zs_bos,
                   "BOS before zero-shot requests: auto (as the tokenizer adds it, which is what lm-eval 0.4.13 "
                   "does), yes (lm-eval add_bos_token=True), no")
      ->capture_default_str()->check(CLI::IsMember({"auto", "yes", "no"}));
  eval->add_option("--kld-base", ev.kld_base,
                   "base model directory: KL(base || MODEL) per token on the --ppl datasets (default wikitext2)");
  eval->add_option("--data-dir", ev.data_dir,
                   "folder with eval/ and zeroshot/ (default: $SQ_DATA_DIR, ../shared/data, ./data)");
  eval->add_option("--seqlen", ev.seqlen, "tokens per window (capped by the model's context)")->capture_default_str()
      ->check(int_in(2, int64_t(1) << 20));
  eval->add_option("--batch-size", ev.batch_size, "windows per forward pass")->capture_default_str()
      ->check(int_in(1, 4096));
  eval->add_option("--max-windows", ev.max_windows, "score at most N windows per dataset (0 = all)")->capture_default_str()
      ->check(int_in(0, INT64_MAX));
  eval->add_option("--dtype", ev.dtype, "compute dtype: auto (cpu: float32, cuda: bfloat16), float32, "
                                        "bfloat16, float16")->capture_default_str();
  eval->add_option("--device", ev.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  eval->add_option("--json", ev.json, "also write the report as JSON to this file");
  eval->add_option("--save-logits", ev.save_logits, "write the logits of the first window of the first --ppl dataset "
                                                    "(float32 [seqlen, vocab], NumPy .npy) and its token ids "
                                                    "(FILE.ids.json), to compare with another runtime");
  add_common(eval);

  // ---- inspect
  cli::InspectArgs in;
  CLI::App* inspect = app.add_subcommand("inspect", "show a model's architecture, parameters and tensors");
  inspect->add_option("model", in.model, "model directory or .gguf file")->required();
  inspect->add_flag("--tensors", in.tensors, "list every tensor (dtype, shape, bytes)");
  inspect->add_flag("--check", in.check, "validate fully, as eval would: load every tensor (presence, shape, dtype, "
                                         "NaN/Inf) and the tokenizer; exit 1 naming the first problem");
  inspect->add_option("--json", in.json, "also write the description as JSON to this file");
  add_common(inspect);

  // ---- synth
  cli::SynthArgs sy;
  CLI::App* synth = app.add_subcommand("synth", "write a checkpoint with seeded random weights "
                                                "(any supported family and shape)");
  synth->add_option("out", sy.out, "output model directory")->required();
  synth->add_option("--preset", sy.preset, "shape: " + presets)->capture_default_str();
  synth->add_option("--family", sy.family, families + " (default: the preset's)");
  synth->add_option("--layers", sy.layers, "decoder layers (default: the preset's; fewer keep its widths, e.g. a "
                                           "7B-shaped layer for a CPU benchmark)")->check(int_in(1, INT64_MAX));
  synth->add_option("--seed", sy.seed, "random seed")->capture_default_str();
  synth->add_option("--dtype", sy.dtype, "stored dtype: bfloat16, float16, float32")->capture_default_str();
  synth->add_option("--shard-size-mb", sy.shard_size_mb, "largest shard in MiB")->capture_default_str()
      ->check(int_in(1, INT64_MAX));
  synth->add_option("--tokenizer", sy.tokenizer, "copy tokenizer files from this directory or file");
  synth->add_flag("--force", sy.force, "replace an existing output directory's files");
  add_common(synth);

  // ---- tokenize
  cli::TokenizeArgs tk;
  CLI::App* tok = app.add_subcommand("tokenize", "print the token ids of a text (stdin by default)");
  tok->add_option("path", tk.path, "model directory, tokenizer folder, tokenizer file (tokenizer.model, tokenizer.json) or .gguf")->required();
  CLI::Option* text_opt = tok->add_option("--text", tk.text, "the text (default: read stdin)");
  tok->add_flag("--json", tk.json, "print {\"ids\": [...], \"tokens\": n} instead of plain ids");
  tok->add_flag("--no-special", tk.no_special, "do not add BOS/EOS as the model's config says");
  add_common(tok);

  // ---- quantize
  cli::QuantizeArgs qa;
  CLI::App* quant = app.add_subcommand("quantize", "quantize a model with a recipe and write the packed result");
  quant->add_option("model", qa.model, "model directory (default: the bundled model, " +
                                           cli::default_model_dir() + ")");
  quant->add_option("--recipe", qa.recipe, "recipe file, or the name of one in configs/ (e.g. gptq-w4g128)")
      ->required();
  quant->add_option("--out", qa.out, "output directory (written to a temporary name, then renamed)")->required();
  quant->add_option("--device", qa.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  quant->add_option("--dtype", qa.dtype, "dtype of calibration forwards: auto (cpu: float32, cuda: bfloat16), "
                                         "float32, bfloat16")->capture_default_str();
  quant->add_option("--store-dtype", qa.store_dtype, "dtype of the calibration activation streams kept in "
                                                    "host memory: auto (= --dtype; float32 under --autocast), float32, bfloat16")->capture_default_str();
  quant->add_option("--autocast", qa.autocast,
                    "learned passes (sliderquant, ratio, adaptive): keep weights, parameters, optimizer state and "
                    "streams in float32 and run the block forwards under bfloat16 autocast, as the official "
                    "SliderQuant code does on CUDA: auto (on for CUDA, off on CPU), on, off (forwards in --dtype)")
      ->capture_default_str()->check(CLI::IsMember({"auto", "on", "off"}));
  quant->add_option("--calib", qa.calib, "calibration text: c4-2k, ptb, wikitext2 or a text file (default: recipe's)");
  quant->add_option("--samples", qa.samples, "calibration windows (default: recipe's)")->check(int_in(1, INT64_MAX));
  quant->add_option("--seqlen", qa.seqlen, "tokens per calibration window (default: recipe's)")->check(int_in(2, int64_t(1) << 20));
  quant->add_option("--seed", qa.seed, "calibration seed (default: recipe's)")->check(int_in(0, INT64_MAX));
  quant->add_option("--batch-size", qa.batch_size, "calibration windows per forward")->capture_default_str()->check(int_in(1, INT64_MAX));
  quant->add_option("--work", qa.work, "work directory for checkpoints and resume (default: OUT.work)");
  quant->add_option("--data-dir", qa.data_dir, "folder with eval/ (default: $SQ_DATA_DIR, ../shared/data, ./data)");
  quant->add_option("--eval", qa.eval, "after quantizing, measure perplexity on these datasets (as eval --ppl)");
  quant->add_option("--json", qa.json, "write a report (plan, timings, calibration, perplexities) to this file");
  quant->add_option("--save-calibration", qa.save_calibration,
                    "write the calibration windows' token ids to this file (JSON: a list of windows), so that "
                    "another tool can be calibrated on the same tokens (with --dry-run: written without quantizing)");
  quant->add_flag("--dry-run", qa.dry_run, "resolve the recipe and print the plan; quantize nothing");
  quant->add_flag("--force", qa.force, "replace an existing output directory");
  quant->add_flag("--keep-work", qa.keep_work, "keep the work directory after success");
  quant->add_flag("--resume-strict", qa.resume_strict,
                  "refuse to run when the work directory holds a checkpoint made from other inputs (model "
                  "files, recipe, calibration, dtype, program version) instead of starting over");
  add_common(quant);

  quant->add_option("--format", qa.format, "output format: native (sliderquant's packed directory), gguf (one "
                                           "llama.cpp file), gptq (GPTQModel / transformers / vLLM) or "
                                           "compressed-tensors (llm-compressor / transformers / vLLM)")
      ->capture_default_str();
  quant->add_option("--gptq-format", qa.gptq_format, "--format gptq: checkpoint_format gptq (v1, zero - 1 stored; "
                                                    "default unless a zero is 0) or gptq_v2 (true zeros)");
  quant->add_option("--gguf-type", qa.gguf_type, "--format gguf: re-quantize linears GGUF cannot hold exactly onto "
                                                "this ggml type (q4_0, q4_1, q5_0, q5_1, q8_0, q2_k..q6_k, f16, bf16)");

  // ---- convert
  cli::ConvertArgs cv;
  CLI::App* convert = app.add_subcommand("convert", "convert a model file (e.g. a GGUF) into a plain Hugging Face "
                                                    "directory (config.json, safetensors, tokenizer files)");
  convert->add_option("in", cv.in, "input model: a .gguf file (any format `inspect` reads)")->required();
  convert->add_option("--out", cv.out, "output directory (written to a temporary name, then renamed)")->required();
  convert->add_option("--dtype", cv.dtype, "stored dtype: float32 (exact for every GGUF type), bfloat16, float16")
      ->capture_default_str();
  convert->add_flag("--force", cv.force, "replace an existing output directory");
  add_common(convert);

  // ---- export
  cli::ExportArgs ex;
  CLI::App* exportc = app.add_subcommand("export", "write a model (quantized or not) in another format, e.g. a "
                                                   "quantized directory as one GGUF file for llama.cpp");
  exportc->add_option("model", ex.model, "model directory or file")->required();
  exportc->add_option("--format", ex.format, "output format: gguf, gptq, compressed-tensors, native, hf")->required();
  exportc->add_option("--out", ex.out, "output file or directory (written to a temporary name, then renamed)")
      ->required();
  exportc->add_option("--gguf-type", ex.gguf_type, "re-quantize linears GGUF cannot hold exactly (group 128, "
                                                   "per-channel, full precision) onto this ggml type: q4_0, q4_1, "
                                                   "q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, f16, bf16 "
                                                   "(lossy; reported per tensor)");
  exportc->add_option("--gptq-format", ex.gptq_format, "--format gptq: checkpoint_format gptq (v1, zero - 1 "
                                                      "stored; default unless a zero is 0) or gptq_v2 (true zeros)");
  exportc->add_option("--json", ex.json, "write a report (every tensor's type and the error the export added)");
  exportc->add_flag("--force", ex.force, "replace an existing output");
  add_common(exportc);

  // ---- recipe
  cli::RecipeArgs ra;
  CLI::App* recipe = app.add_subcommand("recipe", "validate a recipe, or show the per-linear plan it gives a model");
  recipe->add_option("action", ra.action, "check | explain")->required()->check(CLI::IsMember({"check", "explain"}));
  recipe->add_option("recipe", ra.recipe, "recipe file or the name of one in configs/")->required();
  recipe->add_option("--model", ra.model, "model directory (explain needs one; check validates against it)");
  add_common(recipe);

  // ---- list
  cli::ListArgs la;
  CLI::App* list = app.add_subcommand("list", "print a registry as a markdown table: model families, model "
                                              "formats, the recipes in configs/, or which quantizer "
                                              "formats each export format stores exactly");
  list->add_option("what", la.what, "families | formats | recipes | exports")
      ->required()
      ->check(CLI::IsMember({"families", "formats", "recipes", "exports"}));
  list->add_flag("--test", la.test, "recipes: also the small-model recipes in configs/test/ (named test/NAME)");
  add_common(list);

  // ---- report
  cli::ReportArgs rp;
  CLI::App* reportc = app.add_subcommand(
      "report", "one table of every run under a results folder (quantize --json, eval --json and sweep "
                "result.json files, or any hand-made folder of them) and perplexity-vs-bits plots, as a "
                "self-contained HTML page (inline SVG), Markdown or CSV");
  reportc->add_option("results", rp.results, "results folder, walked recursively: every folder holding reports is "
                                             "one run (sweep layout: <model>__<recipe>__s<seed>/{quantize,eval,"
                                             "result}.json)")->required();
  reportc->add_option("--out", rp.out, "output file, written atomically: .html, .md or .csv (- = stdout, Markdown "
                                       "unless --format)")->required();
  reportc->add_option("--format", rp.format, "html, md or csv (default: from the extension of --out)")
      ->check(CLI::IsMember({"html", "md", "csv"}));
  reportc->add_option("--series", rp.series, "plot series: recipe (one per recipe) or method (the recipe name "
                                             "without its bit-width tokens, e.g. gptq-w4g128 -> gptq)")
      ->capture_default_str()->check(CLI::IsMember({"recipe", "method"}));
  reportc->add_option("--title", rp.title, "page title (default: sliderquant report)");
  add_common(reportc);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  tk.has_text = text_opt->count() > 0;
  try {
    if (*eval) return cli::cmd_eval(ev, common);
    if (*inspect) return cli::cmd_inspect(in, common);
    if (*synth) return cli::cmd_synth(sy, common);
    if (*tok) return cli::cmd_tokenize(tk, common);
    if (*quant) return cli::cmd_quantize(qa, common);
    if (*convert) return cli::cmd_convert(cv, common);
    if (*exportc) return cli::cmd_export(ex, common);
    if (*recipe) return cli::cmd_recipe(ra, common);
    if (*list) return cli::cmd_list(la, common);
    if (*reportc) return cli::cmd_report(rp, common);
  } catch (const Preempted& e) {
    std::fprintf(stderr, "preempted: %s\n", e.what());
    return kPreemptedExitCode;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    // libtorch errors carry a C++ backtrace after the first line: keep the message line.
    auto nl = msg.find('\n');
    if (nl != std::string::npos) msg = msg.substr(0, nl);
    std::fprintf(stderr, "error: %s\n", msg.c_str());
    return 1;
  }
  return 0;
}
