// passes/options (private): the helpers a pass declares its option table with. Each row
// binds a field of the pass's options struct: the field's C++ type gives the option's type
// and the conversion of a recipe value (nlohmann's get<T>: a number of another kind is
// converted, a bool or string where a number belongs is the wrong type), the default is
// stated here once, and the range both checks and documents the value.
//   static const std::vector<OptionSpec> table = {
//       option("damp", &Opts::damp, 0.01, in_unit_open(), "Hessian dampening (share of the mean diagonal)"),
//       ...};
#pragma once
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <sstream>
#include <string>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/quant/format.h"

namespace sq::passes {

// What a row says about the allowed values: the text `recipe explain` shows and the check.
struct OptionRange {
  std::string text;
  std::function<std::string(const nlohmann::json&)> check;  // "" = allowed, else the words after the key
};

// nlohmann's get<T> without its undefined corners: for an integer T, a float outside T's range
// (or not finite) and an integer outside T's range are the wrong type (std::out_of_range)
// instead of a wrapped or undefined conversion; an in-range float still truncates.
template <class T>
T checked_get(const nlohmann::json& v) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using L = std::numeric_limits<T>;
    const double hi = std::ldexp(1.0, L::digits), lo = L::is_signed ? -hi : 0.0;  // [lo, hi)
    bool ok = true;
    if (v.is_number_float()) {
      const double d = v.get<double>();
      ok = std::isfinite(d) && d >= lo && d < hi;
    } else if (v.is_number_unsigned()) {
      ok = v.get<uint64_t>() <= uint64_t(L::max());
    } else if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      ok = L::is_signed ? (i >= int64_t(L::min()) && (L::digits >= 63 || i <= int64_t(L::max()))) : i >= 0;
    }
    if (!ok) throw std::out_of_range("value out of range");
  }
  return v.get<T>();
}

template <class T> constexpr OptionType option_type_of();
template <> constexpr OptionType option_type_of<bool>() { return OptionType::Bool; }
template <> constexpr OptionType option_type_of<int>() { return OptionType::Int; }
template <> constexpr OptionType option_type_of<int64_t>() { return OptionType::Int; }
template <> constexpr OptionType option_type_of<uint64_t>() { return OptionType::Unsigned; }
template <> constexpr OptionType option_type_of<double>() { return OptionType::Number; }
template <> constexpr OptionType option_type_of<std::string>() { return OptionType::String; }
template <> constexpr OptionType option_type_of<std::vector<double>>() { return OptionType::NumberList; }
template <> constexpr OptionType option_type_of<std::vector<std::string>>() { return OptionType::StringList; }

// A row for field O::*FIELD of C++ type T (int and int64_t are both "int"; int keeps the
// 32-bit conversion the option always had).
template <class O, class T, class D>
OptionSpec option(const char* name, T O::*field, const D& dflt, OptionRange range, const char* help) {
  OptionSpec s;
  s.name = name;
  s.type = option_type_of<T>();
  s.default_value = nlohmann::json(T(dflt));
  s.range = std::move(range.text);
  s.help = help;
  s.convert = [](const nlohmann::json& v) { return nlohmann::json(checked_get<T>(v)); };
  s.check = std::move(range.check);
  s.store = [field](void* o, const nlohmann::json& v) { static_cast<O*>(o)->*field = v.get<T>(); };
  return s;
}
template <class O, class T, class D>
OptionSpec option(const char* name, T O::*field, const D& dflt, const char* help) {
  return option(name, field, dflt, OptionRange{}, help);
}

// A row of an int field whose recipe value has always been read as the 64-bit type V (where
// a bool is the wrong type, unlike for int) before the 32-bit value was stored.
template <class V>
OptionSpec read_as(OptionSpec s) {
  s.convert = [](const nlohmann::json& v) {
    const V x = checked_get<V>(v);
    bool fits = x <= V(std::numeric_limits<int>::max());
    if constexpr (std::is_signed_v<V>) fits = fits && x >= V(std::numeric_limits<int>::min());
    if (!fits) throw std::out_of_range("value out of range");
    return nlohmann::json(int(x));
  };
  return s;
}

inline std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// v >= LO; the error reads " must be >= LO" plus NOTE (" (0 = full)").
inline OptionRange at_least(double lo, const std::string& note = "") {
  return {">= " + number_text(lo) + note, [lo, note](const nlohmann::json& v) {
            return v.get<double>() >= lo ? std::string() : " must be >= " + number_text(lo) + note;
          }};
}
// v > 0 (" must be positive").
inline OptionRange positive() {
  return {"> 0", [](const nlohmann::json& v) { return v.get<double>() > 0 ? std::string() : std::string(" must be positive"); }};
}
// 0 <= v < 1 (" must be in [0, 1)").
inline OptionRange in_unit_open() {
  return {"[0, 1)", [](const nlohmann::json& v) {
            const double d = v.get<double>();
            return d >= 0 && d < 1 ? std::string() : std::string(" must be in [0, 1)");
          }};
}
// Any of CHOICES; the error reads ` must be "a", "b" or "c"` unless MUST gives its own words.
inline OptionRange one_of(const std::vector<std::string>& choices, const std::string& must = "") {
  std::string text, quoted;
  for (size_t i = 0; i < choices.size(); ++i) {
    text += (i ? " | " : "") + choices[i];
    quoted += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + ("\"" + choices[i] + "\"");
  }
  const std::string err = " must be " + (must.empty() ? quoted : must);
  return {text, [choices, err](const nlohmann::json& v) {
            for (const std::string& c : choices)
              if (v.get<std::string>() == c) return std::string();
            return err;
          }};
}
// Activation / cache bit widths: 2..8, or 16 for off.
inline OptionRange act_bits() {
  return {"2..8 | 16 (off)", [](const nlohmann::json& v) {
            const int64_t b = v.get<int64_t>();
            return supported_bits(b) || b == 16 ? std::string() : std::string(" must be 2..8 or 16 (off)");
          }};
}

}  // namespace sq::passes
