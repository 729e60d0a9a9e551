// tools/cmd_report: `sliderquant report RESULTS_DIR --out FILE`: one table of every run found
// under RESULTS_DIR (quantize --json, eval --json and sweep result.json files) and perplexity-
// vs-bits plots, as HTML (inline SVG, self-contained), Markdown or CSV (eval/report.h).
#include <cctype>
#include <cstdio>

#include "commands.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/util.h"
#include "sliderquant/eval/report.h"

namespace sq::cli {

namespace {

std::string lower(std::string s) {
  for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// html | md | csv from --format, else from the extension of --out.
std::string report_format(const ReportArgs& a) {
  if (!a.format.empty()) return a.format;
  if (a.out == "-") return "md";
  const std::string name = lower(a.out.substr(a.out.find_last_of('/') + 1));
  const size_t dot = name.find_last_of('.');
  const std::string ext = dot == std::string::npos ? "" : name.substr(dot + 1);
  if (ext == "html" || ext == "htm") return "html";
  if (ext == "md" || ext == "markdown") return "md";
  if (ext == "csv") return "csv";
  throw UsageError("--out " + a.out + ": cannot tell the format from the extension (.html, .md or .csv); "
                   "use --format html|md|csv");
}

}  // namespace

int cmd_report(const ReportArgs& a, const CommonArgs& c) {
  apply_common(c);
  const std::string format = report_format(a);
  if (a.out != "-") check_writable_file(a.out, "--out");
  report::Collection col = report::collect_runs(a.results);
  for (const std::string& w : col.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  report::RenderOptions ro;
  ro.series = a.series;
  ro.title = a.title;
  const std::string text = format == "html" ? report::render_html(col, ro)
                           : format == "csv" ? report::render_csv(col, ro)
                                             : report::render_markdown(col, ro);
  if (a.out == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  } else {
    write_file_atomic(a.out, text);
    SQ_INFO("wrote " << a.out << " (" << format << ", " << col.runs.size() << " runs: " << col.count("done")
                     << " done, " << col.count("failed") << " failed)");
  }
  return 0;
}

}  // namespace sq::cli
