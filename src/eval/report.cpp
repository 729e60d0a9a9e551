// eval/report: collect runs from a results folder and render them as Markdown, CSV or one
// self-contained HTML page with inline SVG plots (no script, no external resource).
#include "sliderquant/eval/report.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "sliderquant/core/error.h"

namespace fs = std::filesystem;

namespace sq::report {

namespace {

const char* const kDash = "\xE2\x80\x94";  // em dash: a missing value in html / md

// ---- reading JSON leniently: hand-made reports may hold anything ---------------------------

std::optional<double> num(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  double v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<int64_t> integer(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float()) {
    double v = it->get<double>();
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15) return int64_t(v);
  }
  return std::nullopt;
}

std::string str(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  return "";
}

const nlohmann::json& sub(const nlohmann::json& j, const char* key) {
  static const nlohmann::json null_json;
  if (!j.is_object()) return null_json;
  auto it = j.find(key);
  return it == j.end() ? null_json : *it;
}

// Control characters (newlines in an error message, ...) become spaces: every cell is one line.
std::string one_line(std::string s) {
  for (char& ch : s)
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = ' ';
  return s;
}

std::string short_name(const std::string& name_or_path) {
  std::string s = name_or_path;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s.substr(s.find_last_of('/') + 1);
}

void set_if_absent(std::optional<double>& slot, std::optional<double> v) {
  if (!slot && v) slot = v;
}
void set_max(std::optional<double>& slot, std::optional<double> v) {
  if (v && (!slot || *v > *slot)) slot = v;
}

// ---- applying one report to a run -----------------------------------------------------------

void apply_result(Run& r, const nlohmann::json& j) {
  if (r.model.empty()) r.model = one_line(str(j, "model"));
  if (r.recipe.empty()) r.recipe = one_line(str(j, "recipe"));
  if (!r.seed) r.seed = integer(j, "seed");
  const std::string status = one_line(str(j, "status"));
  if (r.status.empty() && !status.empty()) r.status = status;
  const std::string error = one_line(str(j, "error"));
  if (r.error.empty() && !error.empty()) r.error = error;
  if (!r.exit_code) r.exit_code = integer(j, "exit_code");
  if (!r.attempts) r.attempts = integer(j, "attempts");
  set_if_absent(r.wall_seconds, num(j, "seconds"));
}

void apply_perplexity(Run& r, const nlohmann::json& arr) {
  if (!arr.is_array()) return;
  for (const auto& e : arr) {
    const std::string ds = one_line(short_name(str(e, "dataset")));
    auto ppl = num(e, "ppl");
    if (ds.empty() || !ppl) continue;
    r.ppl.emplace(ds, *ppl);  // the first report applied wins (eval before quantize)
  }
}

void apply_eval(Run& r, const nlohmann::json& j) {
  apply_perplexity(r, sub(j, "perplexity"));
  set_if_absent(r.zeroshot_mean, num(sub(j, "zeroshot_summary"), "score"));
  const nlohmann::json& zs = sub(j, "zeroshot");
  if (zs.is_object()) {
    for (auto it = zs.begin(); it != zs.end(); ++it) {
      std::optional<double> score = num(it.value(), "score");
      if (!score) {  // older / hand-made: acc_norm where reported, else acc, x100
        auto a = num(it.value(), "acc_norm");
        if (!a) a = num(it.value(), "acc");
        if (a) score = 100.0 * *a;
      }
      if (score) r.zeroshot.emplace(one_line(it.key()), *score);
    }
    if (!r.zeroshot_mean && !r.zeroshot.empty()) {
      double s = 0;
      for (const auto& kv : r.zeroshot) s += kv.second;
      r.zeroshot_mean = s / double(r.zeroshot.size());
    }
  }
  const nlohmann::json& kl = sub(sub(j, "kld"), "results");
  if (kl.is_array())
    for (const auto& e : kl) {
      const std::string ds = one_line(short_name(str(e, "dataset")));
      auto v = num(e, "mean_kl");
      if (!ds.empty() && v) r.kl.emplace(ds, *v);
    }
  set_max(r.peak_rss, num(j, "peak_rss_bytes"));
  auto gpu = num(j, "peak_gpu_bytes");
  if (gpu && *gpu > 0) set_max(r.peak_gpu, gpu);
}

void apply_quantize(Run& r, const nlohmann::json& j) {
  const nlohmann::json& recipe = sub(j, "recipe");
  if (r.recipe.empty()) r.recipe = one_line(recipe.is_string() ? recipe.get<std::string>() : str(recipe, "name"));
  if (!r.seed) {
    r.seed = integer(sub(j, "calibration"), "seed");
    if (!r.seed) r.seed = integer(sub(recipe, "calibration"), "seed");
  }
  set_if_absent(r.bits, num(j, "bits_per_weight_planned"));
  apply_perplexity(r, sub(j, "perplexity"));
  set_if_absent(r.quantize_seconds, num(j, "seconds_total"));
  set_max(r.peak_rss, num(j, "peak_rss_bytes"));
  auto gpu = num(j, "peak_gpu_bytes");
  if (gpu && *gpu > 0) set_max(r.peak_gpu, gpu);
}

// "<model>__<recipe>__s<seed>" (recipe '/' written '+'): the sweep's folder name.
bool parse_sweep_name(const std::string& name, std::string& model, std::string& recipe, int64_t& seed) {
  const size_t b = name.rfind("__");
  if (b == std::string::npos || b == 0) return false;
  const std::string s = name.substr(b + 2);
  if (s.size() < 2 || s[0] != 's' || s.size() > 18) return false;
  for (size_t i = 1; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  const size_t a = name.rfind("__", b - 1);
  if (a == std::string::npos || a == 0 || a + 2 >= b) return false;
  model = name.substr(0, a);
  recipe = name.substr(a + 2, b - a - 2);
  std::replace(recipe.begin(), recipe.end(), '+', '/');
  seed = std::stoll(s.substr(1));
  return true;
}

std::string read_text(const fs::path& p, std::string& why) {
  std::ifstream f(p, std::ios::binary);
  if (!f) {
    why = std::strerror(errno);
    return "";
  }
  std::ostringstream os;
  os << f.rdbuf();
  if (f.bad()) why = "read error";
  return os.str();
}

// nlohmann's "[json.exception.parse_error.101] parse error at line 1, ..." without the tag.
std::string parse_reason(const std::string& what) {
  std::string s = what;
  if (!s.empty() && s[0] == '[') {
    size_t e = s.find("] ");
    if (e != std::string::npos) s = s.substr(e + 2);
  }
  return one_line(s);
}

// A model directory (config.json with weights or a quantization_config.json): its JSON files
// are a model's, not reports; it is not walked.
bool is_model_dir(const fs::path& dir, const std::vector<fs::path>& files) {
  bool config = false, weights = false;
  for (const fs::path& f : files) {
    const std::string n = f.filename().string();
    if (n == "config.json") config = true;
    if (n == "quantization_config.json" || f.extension() == ".safetensors" || n == "model.safetensors.index.json")
      weights = true;
  }
  return config && weights;
}

struct Walker {
  fs::path root;
  Collection* out;
  size_t skipped = 0;

  std::string rel(const fs::path& p) const {
    std::string r = p.lexically_relative(root).generic_string();
    return r.empty() ? "." : r;
  }

  void walk(const fs::path& dir, int depth) {
    std::error_code ec;
    std::vector<fs::path> files, dirs;
    fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
    if (ec) {
      if (depth == 0) SQ_FAIL("cannot read results folder " << root.string() << ": " << ec.message());
      out->warnings.push_back("cannot read folder " + rel(dir) + ": " + ec.message());
      return;
    }
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      if (ec) break;
      const fs::path p = it->path();
      std::error_code e2;
      if (it->is_directory(e2) && !it->is_symlink(e2)) dirs.push_back(p);
      else if (it->is_regular_file(e2)) files.push_back(p);
    }
    if (ec) out->warnings.push_back("cannot list folder " + rel(dir) + " completely: " + ec.message());
    std::sort(files.begin(), files.end());
    std::sort(dirs.begin(), dirs.end());
    if (depth > 0 && is_model_dir(dir, files)) return;
    read_folder(dir, files);
    if (depth < 64)
      for (const fs::path& d : dirs) walk(d, depth + 1);
  }

  void read_folder(const fs::path& dir, const std::vector<fs::path>& files) {
    std::vector<nlohmann::json> results, evals, quantizes;
    std::vector<std::string> unreadable;
    Run r;
    r.dir = rel(dir);
    for (const fs::path& f : files) {
      const std::string name = f.filename().string();
      if (f.extension() != ".json" || name.find(".tmp.") != std::string::npos ||
          name.find(".old.") != std::string::npos)
        continue;
      std::error_code ec;
      const auto size = fs::file_size(f, ec);
      if (!ec && size > (uintmax_t(256) << 20)) {
        out->warnings.push_back("skipped " + rel(f) + ": larger than 256 MiB, not a report");
        ++skipped;
        continue;
      }
      std::string why;
      const std::string text = read_text(f, why);
      if (!why.empty()) {
        unreadable.push_back(name + ": " + why);
        r.files.push_back(name);
        continue;
      }
      nlohmann::json doc;
      try {
        doc = nlohmann::json::parse(text);
      } catch (const std::exception& e) {
        unreadable.push_back(name + ": " + parse_reason(e.what()));
        r.files.push_back(name);
        continue;
      }
      const std::string kind = report_kind(doc);
      if (kind.empty()) {
        out->warnings.push_back("skipped " + rel(f) + ": not a quantize, eval or sweep result report");
        ++skipped;
        continue;
      }
      r.files.push_back(name);
      (kind == "result" ? results : kind == "eval" ? evals : quantizes).push_back(std::move(doc));
    }
    if (r.files.empty()) return;
    for (const auto& j : results) apply_result(r, j);
    std::string model, recipe;
    int64_t seed = 0;
    if (parse_sweep_name(dir.filename().string(), model, recipe, seed)) {
      if (r.model.empty()) r.model = model;
      if (r.recipe.empty()) r.recipe = recipe;
      if (!r.seed) r.seed = seed;
    }
    for (const auto& j : evals) apply_eval(r, j);
    for (const auto& j : quantizes) apply_quantize(r, j);
    // An eval of an unquantized model, made by hand: the model is the one evaluated.
    if (r.model.empty() && quantizes.empty() && results.empty())
      for (const auto& j : evals)
        if (r.model.empty()) r.model = one_line(short_name(str(j, "model")));
    if (!unreadable.empty()) {
      if (!r.status.empty() && r.status != "done") r.error = r.status + (r.error.empty() ? "" : ": " + r.error);
      r.status = "unreadable: " + unreadable[0];
      for (size_t i = 1; i < unreadable.size(); ++i) r.error += (r.error.empty() ? "" : "; ") + ("unreadable: " + unreadable[i]);
    } else if (r.status.empty()) {
      r.status = "done";
    }
    out->runs.push_back(std::move(r));
  }
};

// ---- formatting -------------------------------------------------------------------------------

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string fmt_ppl(double v) { return v >= 1e5 ? fmt("%.4g", v) : v >= 1000 ? fmt("%.1f", v) : fmt("%.2f", v); }

std::string fmt_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt("%.0f B", b) : fmt("%.2f ", b) + units[u];
}

std::string fmt_seconds(double s) {
  if (s < 10) return fmt("%.2f s", s);
  if (s < 60) return fmt("%.1f s", s);
  if (s < 3600) return fmt("%.1f min", s / 60);
  return fmt("%.2f h", s / 3600);
}

std::string raw(double v) { return fmt("%.10g", v); }

template <class T, class F>
std::string opt_str(const std::optional<T>& v, F f, const std::string& missing) {
  return v ? f(*v) : missing;
}

std::string map_get(const std::map<std::string, double>& m, const std::string& k,
                    std::string (*f)(double), const std::string& missing) {
  auto it = m.find(k);
  return it == m.end() ? missing : f(it->second);
}

std::string fmt_acc(double v) { return fmt("%.2f", v); }
std::string fmt_kl(double v) { return fmt("%.4f", v); }
std::string fmt_bits(double v) { return fmt("%.3f", v); }

bool any_gpu(const Collection& c) {
  for (const Run& r : c.runs)
    if (r.peak_gpu) return true;
  return false;
}

std::string status_text(const Run& r) {
  std::string s = r.status;
  std::vector<std::string> extra;
  if (r.exit_code && *r.exit_code != 0) extra.push_back("exit " + std::to_string(*r.exit_code));
  if (r.attempts && *r.attempts > 1) extra.push_back(std::to_string(*r.attempts) + " attempts");
  if (!extra.empty()) {
    s += " (";
    for (size_t i = 0; i < extra.size(); ++i) s += (i ? ", " : "") + extra[i];
    s += ")";
  }
  return s;
}

std::string summary_counts(const Collection& c) {
  const int n = int(c.runs.size()), done = c.count("done"), failed = c.count("failed");
  std::string s = std::to_string(n) + (n == 1 ? " run" : " runs") + ": " + std::to_string(done) + " done, " +
                  std::to_string(failed) + " failed";
  const int running = c.count("running"), preempted = c.count("preempted");
  const int other = n - done - failed - running - preempted;
  if (running) s += ", " + std::to_string(running) + " running";
  if (preempted) s += ", " + std::to_string(preempted) + " preempted";
  if (other) s += ", " + std::to_string(other) + " other (unreadable or unknown status)";
  return s;
}

std::string md_cell(const std::string& s) {
  std::string o;
  for (char ch : one_line(s)) {
    if (ch == '|') o += "\\|";
    else if (ch == '<') o += "&lt;";
    else if (ch == '>') o += "&gt;";
    else o += ch;
  }
  return o;
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char ch : s) {
    if (ch == '"') o += '"';
    o += ch;
  }
  return o + "\"";
}

// ---- SVG charts ---------------------------------------------------------------------------------

const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> t;
  double span = hi - lo;
  if (!(span > 0)) return {lo};
  const double raw_step = span / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw_step)));
  const double f = raw_step / mag;
  const double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

std::string tick_label(double v) {
  std::string s = fmt("%.4g", v);
  return s;
}

std::string marker(int shape, double x, double y, const char* colour) {
  std::ostringstream o;
  const double r = 4.5;
  switch (shape % 4) {
    case 0:
      o << "<circle cx=\"" << fmt("%.1f", x) << "\" cy=\"" << fmt("%.1f", y) << "\" r=\"" << r << "\" fill=\"" << colour
        << "\"";
      break;
    case 1:
      o << "<rect x=\"" << fmt("%.1f", x - r) << "\" y=\"" << fmt("%.1f", y - r) << "\" width=\"" << 2 * r
        << "\" height=\"" << 2 * r << "\" fill=\"" << colour << "\"";
      break;
    case 2:
      o << "<polygon points=\"" << fmt("%.1f", x) << "," << fmt("%.1f", y - r - 1) << " " << fmt("%.1f", x - r - 1) << ","
        << fmt("%.1f", y + r) << " " << fmt("%.1f", x + r + 1) << "," << fmt("%.1f", y + r) << "\" fill=\"" << colour
        << "\"";
      break;
    default:
      o << "<polygon points=\"" << fmt("%.1f", x) << "," << fmt("%.1f", y - r - 1) << " " << fmt("%.1f", x + r + 1)
        << "," << fmt("%.1f", y) << " " << fmt("%.1f", x) << "," << fmt("%.1f", y + r + 1) << " "
        << fmt("%.1f", x - r - 1) << "," << fmt("%.1f", y) << "\" fill=\"" << colour << "\"";
  }
  return o.str();
}

struct Point {
  double bits, ppl;
  const Run* run;
};

std::string series_key(const Run& r, const RenderOptions& o) {
  const std::string name = o.series == "method" ? method_of(r.recipe) : r.recipe;
  return name.empty() ? "(unknown recipe)" : name;
}

std::string svg_chart(const std::string& model, const std::string& dataset,
                      const std::map<std::string, std::vector<Point>>& series,
                      const std::map<std::string, int>& series_index) {
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (const auto& kv : series)
    for (const Point& p : kv.second) {
      xmin = std::min(xmin, p.bits), xmax = std::max(xmax, p.bits);
      ymin = std::min(ymin, p.ppl), ymax = std::max(ymax, p.ppl);
    }
  const bool logy = ymin > 0 && ymax / ymin > 10;
  auto ty = [&](double v) { return logy ? std::log10(v) : v; };
  double x0 = xmin, x1 = xmax, y0 = ty(ymin), y1 = ty(ymax);
  if (x1 - x0 < 1e-9) x0 -= 0.5, x1 += 0.5;
  else {
    const double pad = (x1 - x0) * 0.06;
    x0 -= pad, x1 += pad;
  }
  if (y1 - y0 < 1e-12) {
    const double d = logy ? 0.1 : std::max(std::fabs(y0) * 0.05, 0.5);
    y0 -= d, y1 += d;
  } else {
    const double pad = (y1 - y0) * 0.08;
    y0 -= pad, y1 += pad;
  }
  const int legend_rows = int(series.size());
  const double W = 760, left = 72, right = 560, top = 44;
  const double H = std::max(420.0, top + 24 + 20.0 * legend_rows), bottom = H - 56;
  auto px = [&](double b) { return left + (b - x0) / (x1 - x0) * (right - left); };
  auto py = [&](double v) { return bottom - (ty(v) - y0) / (y1 - y0) * (bottom - top); };
  auto pyt = [&](double t) { return bottom - (t - y0) / (y1 - y0) * (bottom - top); };  // t already transformed

  std::ostringstream o;
  const std::string title = (model.empty() ? std::string("unknown model") : model) + " \xC2\xB7 " + dataset +
                            ": perplexity vs bits per weight";
  o << "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" viewBox=\"0 0 " << W << " " << H << "\" role=\"img\" aria-label=\"" << html_escape(title) << "\" "
    << "data-model=\"" << html_escape(model) << "\" data-dataset=\"" << html_escape(dataset) << "\">\n";
  o << "<rect x=\"0\" y=\"0\" width=\"" << W << "\" height=\"" << H << "\" fill=\"#ffffff\"/>\n";
  o << "<text x=\"" << W / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">"
    << html_escape(title) << "</text>\n";
  // grid and ticks
  o << "<g class=\"axes\" font-size=\"11\" fill=\"#333\">\n";
  for (double t : nice_ticks(x0, x1, 7)) {
    const double x = px(t);
    o << "<line x1=\"" << fmt("%.1f", x) << "\" y1=\"" << top << "\" x2=\"" << fmt("%.1f", x) << "\" y2=\"" << bottom
      << "\" stroke=\"#e5e5e5\"/>";
    o << "<line x1=\"" << fmt("%.1f", x) << "\" y1=\"" << bottom << "\" x2=\"" << fmt("%.1f", x) << "\" y2=\""
      << bottom + 5 << "\" stroke=\"#333\"/>";
    o << "<text x=\"" << fmt("%.1f", x) << "\" y=\"" << bottom + 18 << "\" text-anchor=\"middle\">" << tick_label(t)
      << "</text>\n";
  }
  std::vector<double> yt;  // in transformed units
  if (logy) {
    const int d0 = int(std::floor(y0)), d1 = int(std::ceil(y1));
    const bool fine = d1 - d0 <= 3;
    for (int d = d0; d <= d1; ++d)
      for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
        const double t = std::log10(m) + d;
        if (t >= y0 - 1e-9 && t <= y1 + 1e-9) yt.push_back(t);
      }
  } else {
    yt = nice_ticks(y0, y1, 6);
  }
  for (double t : yt) {
    const double y = pyt(t);
    o << "<line x1=\"" << left << "\" y1=\"" << fmt("%.1f", y) << "\" x2=\"" << right << "\" y2=\"" << fmt("%.1f", y)
      << "\" stroke=\"#e5e5e5\"/>";
    o << "<line x1=\"" << left - 5 << "\" y1=\"" << fmt("%.1f", y) << "\" x2=\"" << left << "\" y2=\""
      << fmt("%.1f", y) << "\" stroke=\"#333\"/>";
    o << "<text x=\"" << left - 8 << "\" y=\"" << fmt("%.1f", y + 4) << "\" text-anchor=\"end\">"
      << tick_label(logy ? std::pow(10.0, t) : t) << "</text>\n";
  }
  o << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << right - left << "\" height=\"" << bottom - top
    << "\" fill=\"none\" stroke=\"#333\"/>\n";
  o << "<text x=\"" << (left + right) / 2 << "\" y=\"" << H - 14
    << "\" text-anchor=\"middle\" font-size=\"12\">bits per weight (planned)</text>\n";
  const double ymid = (top + bottom) / 2;
  o << "<text x=\"18\" y=\"" << ymid << "\" transform=\"rotate(-90 18 " << ymid
    << ")\" text-anchor=\"middle\" font-size=\"12\">perplexity (" << html_escape(dataset)
    << (logy ? ", log scale" : "") << ")</text>\n";
  o << "</g>\n";
  // series
  int row = 0;
  for (const auto& kv : series) {
    const int idx = series_index.at(kv.first);
    const char* colour = kPalette[idx % 10];
    const int shape = idx / 10;
    std::vector<Point> pts = kv.second;
    std::sort(pts.begin(), pts.end(), [](const Point& a, const Point& b) {
      return a.bits != b.bits ? a.bits < b.bits : a.ppl < b.ppl;
    });
    o << "<g class=\"series\" data-series=\"" << html_escape(kv.first) << "\">\n";
    if (pts.front().bits != pts.back().bits) {
      // the line goes through the mean of the runs (seeds) at each bit width
      o << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.6\" points=\"";
      for (size_t i = 0; i < pts.size();) {
        size_t j = i;
        double s = 0;
        for (; j < pts.size() && pts[j].bits == pts[i].bits; ++j) s += ty(pts[j].ppl);
        const double m = s / double(j - i);
        o << fmt("%.1f", px(pts[i].bits)) << "," << fmt("%.1f", pyt(m)) << " ";
        i = j;
      }
      o << "\"/>\n";
    }
    for (const Point& p : pts) {
      std::string tip = kv.first + ": " + fmt("%.3f", p.bits) + " bits, perplexity " + fmt_ppl(p.ppl);
      if (p.run->seed) tip += ", seed " + std::to_string(*p.run->seed);
      if (p.run->recipe != kv.first && !p.run->recipe.empty()) tip += " (" + p.run->recipe + ")";
      o << marker(shape, px(p.bits), py(p.ppl), colour) << "><title>" << html_escape(tip) << "</title>"
        << (shape % 4 == 0 ? "</circle>" : shape % 4 == 1 ? "</rect>" : "</polygon>") << "\n";
    }
    // legend entry
    const double ly = top + 8 + 20.0 * row;
    std::string label = kv.first;
    if (label.size() > 26) label = label.substr(0, 25) + "\xE2\x80\xA6";
    o << "<g class=\"legend\">" << marker(shape, right + 22, ly, colour) << "/>"
      << "<line x1=\"" << right + 12 << "\" y1=\"" << ly << "\" x2=\"" << right + 32 << "\" y2=\"" << ly
      << "\" stroke=\"" << colour << "\" stroke-width=\"1.6\"/>"
      << "<text x=\"" << right + 40 << "\" y=\"" << ly + 4 << "\" font-size=\"12\"><title>" << html_escape(kv.first)
      << "</title>" << html_escape(label) << " (" << pts.size() << ")</text></g>\n";
    o << "</g>\n";
    ++row;
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace

int Collection::count(const std::string& status) const {
  int n = 0;
  for (const Run& r : runs) n += r.status == status;
  return n;
}

std::string report_kind(const nlohmann::json& j) {
  if (!j.is_object()) return "";
  if (j.contains("sliderquant_sweep_result")) return "result";
  if (j.contains("bits_per_weight_planned") || (j.contains("recipe") && j.contains("timings_seconds")))
    return "quantize";
  if (j.contains("zeroshot") || j.contains("zeroshot_summary") || j.contains("kld")) return "eval";
  if (j.contains("perplexity") && sub(j, "perplexity").is_array() && !j.contains("recipe") &&
      (str(j, "tool") == "sliderquant" || j.contains("architecture") || j.contains("model")))
    return "eval";
  return "";
}

std::string method_of(const std::string& recipe) {
  std::string prefix, name = recipe;
  const size_t slash = recipe.find_last_of('/');
  if (slash != std::string::npos) prefix = recipe.substr(0, slash + 1), name = recipe.substr(slash + 1);
  // a width token: w<bits>[g<group>][s|d][a<bits>][k<bits>][v<bits>][kv<bits>], q<d>_<x>, perchannel, pc
  auto is_width = [](const std::string& t) {
    if (t == "perchannel" || t == "pc") return true;
    if (t.size() >= 2 && t[0] == 'q' && std::isdigit(static_cast<unsigned char>(t[1]))) return true;  // q4_0, q2_k
    if (t.size() < 2 || t[0] != 'w' || !std::isdigit(static_cast<unsigned char>(t[1]))) return false;
    for (char ch : t)
      if (!std::isalnum(static_cast<unsigned char>(ch))) return false;
    return true;
  };
  std::string out;
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('-', i);
    if (j == std::string::npos) j = name.size();
    const std::string tok = name.substr(i, j - i);
    if (!tok.empty() && !is_width(tok)) out += (out.empty() ? "" : "-") + tok;
    i = j + 1;
  }
  return out.empty() ? recipe : prefix + out;
}

std::string html_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20 && ch != '\n' && ch != '\t') o += ' ';
        else o += ch;
    }
  }
  return o;
}

Collection collect_runs(const std::string& root) {
  Collection c;
  c.root = root;
  std::error_code ec;
  SQ_CHECK(!root.empty(), "no results folder given");
  const fs::file_status st = fs::status(root, ec);
  SQ_CHECK(!ec || ec == std::errc::no_such_file_or_directory,
           "cannot read results folder " << root << ": " << ec.message());
  SQ_CHECK(fs::exists(st), "results folder " << root << " does not exist");
  SQ_CHECK(fs::is_directory(st), "results folder " << root << " is not a folder");
  Walker w{fs::path(root), &c};
  w.walk(fs::path(root), 0);
  SQ_CHECK(!c.runs.empty(), "no reports in " << root << ": no quantize --json, eval --json or result.json file"
                                             << (w.skipped ? " (" + std::to_string(w.skipped) + " other JSON files skipped)"
                                                           : std::string()));
  std::set<std::string> ppl, kl, tasks;
  for (const Run& r : c.runs) {
    for (const auto& kv : r.ppl) ppl.insert(kv.first);
    for (const auto& kv : r.kl) kl.insert(kv.first);
    for (const auto& kv : r.zeroshot) tasks.insert(kv.first);
  }
  // the usual datasets first, in the papers' order, then the rest by name
  auto order = [](const std::set<std::string>& s) {
    static const std::vector<std::string> known = {"wikitext2", "c4", "c4-2k", "ptb"};
    std::vector<std::string> o;
    for (const std::string& k : known)
      if (s.count(k)) o.push_back(k);
    for (const std::string& k : s)
      if (std::find(known.begin(), known.end(), k) == known.end()) o.push_back(k);
    return o;
  };
  c.ppl_datasets = order(ppl);
  c.kl_datasets = order(kl);
  c.tasks.assign(tasks.begin(), tasks.end());
  std::stable_sort(c.runs.begin(), c.runs.end(), [](const Run& a, const Run& b) {
    if (a.model.empty() != b.model.empty()) return b.model.empty();
    if (a.model != b.model) return a.model < b.model;
    if (a.bits.has_value() != b.bits.has_value()) return a.bits.has_value();
    if (a.bits && *a.bits != *b.bits) return *a.bits < *b.bits;
    if (a.recipe != b.recipe) return a.recipe < b.recipe;
    if (a.seed != b.seed) return a.seed < b.seed;
    return a.dir < b.dir;
  });
  return c;
}

std::string render_markdown(const Collection& c, const RenderOptions& o) {
  std::ostringstream s;
  const std::string dash = kDash;
  s << "# " << md_cell(o.title.empty() ? "sliderquant report" : o.title) << "\n\n";
  s << summary_counts(c) << ", from `" << md_cell(c.root) << "`.\n\n";
  const bool gpu = any_gpu(c);
  std::vector<std::string> head = {"model", "recipe", "seed", "bits/w"};
  for (const auto& d : c.ppl_datasets) head.push_back("ppl " + d);
  head.push_back("zero-shot");
  for (const auto& t : c.tasks) head.push_back("zs " + t);
  for (const auto& d : c.kl_datasets) head.push_back("KL " + d);
  head.push_back("quantize time");
  head.push_back("peak RSS");
  if (gpu) head.push_back("peak GPU");
  head.push_back("status");
  head.push_back("folder");
  s << "|";
  for (const auto& h : head) s << " " << md_cell(h) << " |";
  s << "\n|";
  for (size_t i = 0; i < head.size(); ++i) s << (i < 3 || i + 2 >= head.size() ? "---|" : "---:|");
  s << "\n";
  for (const Run& r : c.runs) {
    std::vector<std::string> row = {r.model.empty() ? dash : r.model, r.recipe.empty() ? dash : r.recipe,
                                    r.seed ? std::to_string(*r.seed) : dash, opt_str(r.bits, fmt_bits, dash)};
    for (const auto& d : c.ppl_datasets) row.push_back(map_get(r.ppl, d, fmt_ppl, dash));
    row.push_back(opt_str(r.zeroshot_mean, fmt_acc, dash));
    for (const auto& t : c.tasks) row.push_back(map_get(r.zeroshot, t, fmt_acc, dash));
    for (const auto& d : c.kl_datasets) row.push_back(map_get(r.kl, d, fmt_kl, dash));
    row.push_back(opt_str(r.quantize_seconds, fmt_seconds, dash));
    row.push_back(opt_str(r.peak_rss, fmt_bytes, dash));
    if (gpu) row.push_back(opt_str(r.peak_gpu, fmt_bytes, dash));
    row.push_back(status_text(r) + (r.error.empty() ? "" : ": " + r.error));
    row.push_back(r.dir);
    s << "|";
    for (const auto& v : row) s << " " << md_cell(v) << " |";
    s << "\n";
  }
  if (!c.tasks.empty())
    s << "\nzero-shot: mean over tasks of 100 x (acc_norm where the task reports it, else acc); zs TASK: that "
         "task's score. KL: mean KL(base || model) per token.\n";
  if (!c.warnings.empty()) {
    s << "\nSkipped:\n\n";
    for (const auto& w : c.warnings) s << "- " << md_cell(w) << "\n";
  }
  return s.str();
}

std::string render_csv(const Collection& c, const RenderOptions&) {
  std::ostringstream s;
  std::vector<std::string> head = {"model", "recipe", "seed", "bits_per_weight"};
  for (const auto& d : c.ppl_datasets) head.push_back("ppl_" + d);
  head.push_back("zeroshot_mean");
  for (const auto& t : c.tasks) head.push_back("zs_" + t);
  for (const auto& d : c.kl_datasets) head.push_back("kl_" + d);
  for (const char* h : {"quantize_seconds", "wall_seconds", "peak_rss_bytes", "peak_gpu_bytes", "status", "error",
                        "exit_code", "attempts", "folder"})
    head.push_back(h);
  for (size_t i = 0; i < head.size(); ++i) s << (i ? "," : "") << csv_cell(head[i]);
  s << "\n";
  auto o = [](const std::optional<double>& v) { return v ? raw(*v) : std::string(); };
  auto oi = [](const std::optional<int64_t>& v) { return v ? std::to_string(*v) : std::string(); };
  for (const Run& r : c.runs) {
    std::vector<std::string> row = {r.model, r.recipe, oi(r.seed), o(r.bits)};
    for (const auto& d : c.ppl_datasets) row.push_back(map_get(r.ppl, d, raw, ""));
    row.push_back(o(r.zeroshot_mean));
    for (const auto& t : c.tasks) row.push_back(map_get(r.zeroshot, t, raw, ""));
    for (const auto& d : c.kl_datasets) row.push_back(map_get(r.kl, d, raw, ""));
    row.push_back(o(r.quantize_seconds));
    row.push_back(o(r.wall_seconds));
    row.push_back(o(r.peak_rss));
    row.push_back(o(r.peak_gpu));
    row.push_back(r.status);
    row.push_back(r.error);
    row.push_back(oi(r.exit_code));
    row.push_back(oi(r.attempts));
    row.push_back(r.dir);
    for (size_t i = 0; i < row.size(); ++i) s << (i ? "," : "") << csv_cell(one_line(row[i]));
    s << "\n";
  }
  return s.str();
}

std::string render_html(const Collection& c, const RenderOptions& o) {
  const std::string title = o.title.empty() ? "sliderquant report" : o.title;
  const std::string dash = kDash;
  std::ostringstream s;
  s << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" << html_escape(title)
    << "</title>\n<style>\n"
       "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}\n"
       "h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:26px 0 8px}\n"
       ".summary{font-size:14px;margin:0 0 4px}.folder{font-family:monospace;background:#f3f3f3;padding:1px 4px}\n"
       "table{border-collapse:collapse;font-size:13px}\n"
       "th,td{border:1px solid #d0d0d0;padding:4px 8px;text-align:right;white-space:nowrap}\n"
       "th{background:#eef2f7;position:sticky;top:0}\n"
       "td.t,th.t{text-align:left}tr:nth-child(even) td{background:#fafafa}\n"
       ".done{color:#11722a;font-weight:bold}.failed{color:#b3261e;font-weight:bold}"
       ".other{color:#8a5a00;font-weight:bold}\n"
       ".err{color:#b3261e;font-size:12px;white-space:normal;max-width:36em}\n"
       "td.s{white-space:normal;min-width:10em;max-width:36em;overflow-wrap:anywhere}.wide{overflow-x:auto}\n"
       ".charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #d0d0d0;font-family:inherit}\n"
       ".warn{color:#8a5a00;font-size:13px}.note{color:#555;font-size:12px}\n"
       "</style>\n</head>\n<body>\n";
  s << "<h1>" << html_escape(title) << "</h1>\n";
  s << "<p class=\"summary\"><b>" << html_escape(summary_counts(c)) << "</b> &mdash; results folder <span class=\"folder\">"
    << html_escape(c.root) << "</span></p>\n";

  // ---- the table
  const bool gpu = any_gpu(c);
  s << "<h2>Runs</h2>\n<div class=\"wide\"><table class=\"runs\">\n<thead><tr><th class=\"t\">model</th><th class=\"t\">recipe</th>"
       "<th>seed</th><th>bits/w</th>";
  for (const auto& d : c.ppl_datasets) s << "<th>ppl " << html_escape(d) << "</th>";
  s << "<th>zero-shot</th>";
  for (const auto& d : c.kl_datasets) s << "<th>KL " << html_escape(d) << "</th>";
  s << "<th>quantize time</th><th>peak RSS</th>";
  if (gpu) s << "<th>peak GPU</th>";
  s << "<th class=\"t\">status</th><th class=\"t\">folder</th></tr></thead>\n<tbody>\n";
  auto cell = [&](const std::string& v) { return "<td>" + html_escape(v) + "</td>"; };
  for (const Run& r : c.runs) {
    s << "<tr class=\"run\"><td class=\"t\">" << html_escape(r.model.empty() ? dash : r.model) << "</td><td class=\"t\">"
      << html_escape(r.recipe.empty() ? dash : r.recipe) << "</td>" << cell(r.seed ? std::to_string(*r.seed) : dash)
      << cell(opt_str(r.bits, fmt_bits, dash));
    for (const auto& d : c.ppl_datasets) s << cell(map_get(r.ppl, d, fmt_ppl, dash));
    if (r.zeroshot.empty()) {
      s << cell(opt_str(r.zeroshot_mean, fmt_acc, dash));
    } else {
      std::string tip;
      for (const auto& kv : r.zeroshot) tip += (tip.empty() ? "" : ", ") + kv.first + " " + fmt_acc(kv.second);
      s << "<td title=\"" << html_escape(tip) << "\">" << html_escape(opt_str(r.zeroshot_mean, fmt_acc, dash)) << "</td>";
    }
    for (const auto& d : c.kl_datasets) s << cell(map_get(r.kl, d, fmt_kl, dash));
    s << cell(opt_str(r.quantize_seconds, fmt_seconds, dash)) << cell(opt_str(r.peak_rss, fmt_bytes, dash));
    if (gpu) s << cell(opt_str(r.peak_gpu, fmt_bytes, dash));
    const char* cls = r.status == "done" ? "done" : r.status == "failed" ? "failed" : "other";
    // "unreadable: FILE: REASON": the label in bold, the reason with the error lines
    std::string label = status_text(r), detail = r.error;
    if (r.status.rfind("unreadable: ", 0) == 0) {
      const size_t colon = r.status.find(": ", 12);
      if (colon != std::string::npos) {
        label = r.status.substr(0, colon);
        detail = r.status.substr(colon + 2) + (r.error.empty() ? "" : "; " + r.error);
      }
    }
    s << "<td class=\"t s\"><span class=\"" << cls << "\">" << html_escape(label) << "</span>";
    if (!detail.empty()) s << "<div class=\"err\">" << html_escape(detail) << "</div>";
    s << "</td><td class=\"t\">" << html_escape(r.dir) << "</td></tr>\n";
  }
  s << "</tbody>\n</table></div>\n";
  s << "<p class=\"note\">bits/w: bits per weight planned by the recipe; ppl: perplexity (eval's, else quantize "
       "--eval's); zero-shot: mean over tasks of 100 &times; (acc_norm where reported, else acc), per task on hover; "
       "KL: mean KL(base || model) per token; peak memory: the larger of quantize's and eval's.</p>\n";

  // ---- the charts: one per model and dataset
  std::map<std::string, int> series_index;
  for (const Run& r : c.runs) series_index.emplace(series_key(r, o), 0);
  {
    int i = 0;
    for (auto& kv : series_index) kv.second = i++;
  }
  std::vector<std::string> models;
  for (const Run& r : c.runs)
    if (std::find(models.begin(), models.end(), r.model) == models.end()) models.push_back(r.model);
  std::ostringstream charts;
  int n_charts = 0, unplotted = 0;
  for (const Run& r : c.runs)
    if (!r.bits && !r.ppl.empty()) ++unplotted;
  for (const std::string& m : models)
    for (const std::string& d : c.ppl_datasets) {
      std::map<std::string, std::vector<Point>> series;
      for (const Run& r : c.runs) {
        if (r.model != m || !r.bits) continue;
        auto it = r.ppl.find(d);
        if (it == r.ppl.end() || !(it->second > 0)) continue;
        series[series_key(r, o)].push_back({*r.bits, it->second, &r});
      }
      if (series.empty()) continue;
      charts << svg_chart(m, d, series, series_index);
      ++n_charts;
    }
  s << "<h2>Perplexity vs bits per weight</h2>\n";
  if (n_charts == 0) {
    s << "<p class=\"note\">No run has both a perplexity and a planned bits per weight: nothing to plot.</p>\n";
  } else {
    s << "<p class=\"note\">One chart per model and dataset; one series per "
      << (o.series == "method" ? "method (the recipe name without its bit widths)" : "recipe")
      << "; the line joins the mean over seeds at each bit width; hover a point for its run."
      << (unplotted ? " " + std::to_string(unplotted) + " run(s) with a perplexity but no bits per weight are not plotted."
                    : std::string())
      << "</p>\n<div class=\"charts\">\n"
      << charts.str() << "</div>\n";
  }
  if (!c.warnings.empty()) {
    s << "<h2>Skipped files</h2>\n<ul class=\"warn\">\n";
    for (const auto& w : c.warnings) s << "<li>" << html_escape(w) << "</li>\n";
    s << "</ul>\n";
  }
  s << "<p class=\"note\">sliderquant " << SQ_VERSION << " report</p>\n</body>\n</html>\n";
  return s.str();
}

}  // namespace sq::report
