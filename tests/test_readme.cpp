// Tests that the docs' registry tables are what the registries print: the text between
// `<!-- sliderquant list X -->` and the next `<!-- end -->` must equal the output of
// `sliderquant list X`, so adding a family or a recipe without updating the front door fails
// here (paste the command's output between the markers to fix it).
#include <gtest/gtest.h>

#include <string>

#include "sliderquant/core/util.h"
#include "test_util.h"

namespace {


// The tables checked against the CLI, and the file that shows each.
const std::pair<const char*, const char*> kTables[] = {
    {"families", "/README.md"}, {"formats", "/README.md"}, {"recipes", "/configs/README.md"}, {"exports", "/docs/EXPORTS.md"}};

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \n");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \n") - a + 1);
}

// The README text between the table's start marker and the next end marker; "<missing>" if absent.
std::string readme_table(const std::string& readme, const std::string& what) {
  const std::string start = "<!-- sliderquant list " + what + " -->";
  const size_t a = readme.find(start);
  if (a == std::string::npos) return "<missing>";
  const size_t b = readme.find("<!-- end -->", a);
  if (b == std::string::npos) return "<missing>";
  return trim(readme.substr(a + start.size(), b - a - start.size()));
}

}  // namespace

TEST(Readme, RegistryTablesMatchTheCli) {
  for (const auto& [what, file] : kTables) {
    const std::string doc = sq::read_file(std::string(SQ_SOURCE_DIR) + file);
    sq::testing::CliResult r = sq::testing::run_cli(std::string("list ") + what + " --quiet");
    ASSERT_EQ(r.code, 0) << what << ": " << r.out;
    EXPECT_EQ(readme_table(doc, what), trim(r.out))
        << file << "'s " << what << " table differs from `sliderquant list " << what
        << "`: paste the command's output between the markers";
  }
}

TEST(Readme, ListCommand) {
  sq::testing::CliResult f = sq::testing::run_cli("list families");
  ASSERT_EQ(f.code, 0) << f.out;
  EXPECT_NE(f.out.find("| `llama` | `LlamaForCausalLM` |"), std::string::npos) << f.out;
  sq::testing::CliResult fm = sq::testing::run_cli("list formats");
  ASSERT_EQ(fm.code, 0) << fm.out;
  EXPECT_NE(fm.out.find("| `native` | packed |"), std::string::npos) << fm.out;
  EXPECT_NE(fm.out.find("| `hf` |"), std::string::npos) << fm.out;
  // Every bundled recipe loads; --test adds the small-model ones under their test/ names.
  sq::testing::CliResult r = sq::testing::run_cli("list recipes --test");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("| `gptq-w4g128` | gptq | w4g128 | c4-2k, 128 x 2048, seed 0 |"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("| `test/stories-rtn-w4-pc` | rtn |"), std::string::npos) << r.out;
  EXPECT_EQ(sq::testing::run_cli("list nothing").code, 2);
  EXPECT_EQ(sq::testing::run_cli("list").code, 2);
}
