// Tests of core/json (the one set of JSON accessors) and core/shape: every error names the
// file, the key and the expected type.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/core/json.h"
#include "sliderquant/core/shape.h"

using namespace sq;

namespace {

template <class F>
std::string error_text(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(CoreJson, CheckKeysNamesTheKeyAndTheKnownOnes) {
  const nlohmann::json j = nlohmann::json::parse(R"({"a": 1, "b": 2})");
  EXPECT_NO_THROW(check_keys(j, {"a", "b", "c"}, "f.json"));
  EXPECT_EQ(error_text([&] { check_keys(j, {"a"}, "f.json"); }), "f.json: unknown key 'b' (known: a)");
  EXPECT_EQ(error_text([&] { check_keys(j, {"a", "c"}, "f.json", "'calibration'"); }),
            "f.json: unknown key 'b' in 'calibration' (known: a, c)");
  EXPECT_EQ(error_text([&] { check_keys(j, {}, "f.json"); }), "f.json: unknown key 'a' (known: none)");
  EXPECT_EQ(error_text([&] { check_keys(nlohmann::json::array(), {"a"}, "f.json", "the recipe"); }),
            "f.json: the recipe must be an object");
  EXPECT_NO_THROW(check_keys(nlohmann::json::object(), {}, "f.json"));
}

TEST(CoreJson, TypedAccessorsNameFileKeyAndType) {
  const nlohmann::json j = nlohmann::json::parse(
      R"({"n": 3, "x": 2.5, "flag": true, "s": "hi", "nul": null, "txt": "3"})");
  EXPECT_EQ(req_int(j, "n", "c.json"), 3);
  EXPECT_EQ(opt_int(j, "missing", 7, "c.json"), 7);
  EXPECT_EQ(opt_int(j, "nul", 7, "c.json"), 7);  // null counts as absent
  EXPECT_DOUBLE_EQ(opt_num(j, "x", 0.0, "c.json"), 2.5);
  EXPECT_DOUBLE_EQ(opt_num(j, "n", 0.0, "c.json"), 3.0);  // an integer is a number
  EXPECT_DOUBLE_EQ(req_num(j, "x", "c.json"), 2.5);
  EXPECT_TRUE(opt_bool(j, "flag", false, "c.json"));
  EXPECT_EQ(opt_str(j, "s", "d", "c.json"), "hi");
  EXPECT_EQ(opt_str(j, "missing", "d", "c.json"), "d");
  EXPECT_EQ(req_str(j, "s", "c.json"), "hi");
  EXPECT_TRUE(has_value(j, "n"));
  EXPECT_FALSE(has_value(j, "nul"));
  EXPECT_FALSE(has_value(j, "missing"));

  EXPECT_EQ(error_text([&] { req_int(j, "missing", "c.json"); }), "c.json: missing required key 'missing'");
  EXPECT_EQ(error_text([&] { req_int(j, "nul", "c.json"); }), "c.json: missing required key 'nul'");
  EXPECT_EQ(error_text([&] { req_int(j, "x", "c.json"); }), "c.json: key 'x' must be an integer");
  EXPECT_EQ(error_text([&] { opt_int(j, "txt", 0, "c.json"); }), "c.json: key 'txt' must be an integer");
  EXPECT_EQ(error_text([&] { opt_num(j, "txt", 0, "c.json"); }), "c.json: key 'txt' must be a number");
  EXPECT_EQ(error_text([&] { opt_bool(j, "n", false, "c.json"); }), "c.json: key 'n' must be true or false");
  EXPECT_EQ(error_text([&] { opt_str(j, "n", "", "c.json"); }), "c.json: key 'n' must be a string");
  EXPECT_EQ(error_text([&] { req_str(j, "missing", "c.json"); }), "c.json: missing required key 'missing'");
}

TEST(CoreJson, GetOrConvertsOrNamesTheKey) {
  const nlohmann::json j = nlohmann::json::parse(R"({"v": [0.5, 1.0], "s": "x", "nul": null})");
  EXPECT_EQ(get_or<std::vector<double>>(j, "v", {}, "o"), (std::vector<double>{0.5, 1.0}));
  EXPECT_EQ(get_or<std::string>(j, "missing", "d", "o"), "d");
  EXPECT_EQ(error_text([&] { get_or<double>(j, "s", 0.0, "o"); }), "o: key 's' has the wrong type");
  EXPECT_EQ(error_text([&] { get_or<bool>(j, "nul", false, "o"); }), "o: key 'nul' has the wrong type");
}

TEST(CoreShape, ShapeStr) {
  EXPECT_EQ(shape_str({4, 64}), "[4, 64]");
  EXPECT_EQ(shape_str({}), "[]");
  EXPECT_EQ(shape_str(std::vector<int64_t>{7}), "[7]");
}
