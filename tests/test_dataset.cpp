// Tests of data/dataset: named datasets built from a temporary folder laid out like
// shared/data (ptb line stripping, c4-2k .jsonl.xz joining, wikitext2 as is), plain paths,
// sha256/max_windows/note, the .xz reader and every error. Fixtures are made in-process
// (liblzma's encoder); one test reads the real shared/data when it is present.
#include <gtest/gtest.h>
#include <lzma.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/dataset.h"
#include "test_util.h"

using namespace sq;
namespace fs = std::filesystem;

namespace {
using sq::testing::error_of;

std::string xz_compress(const std::string& s) {
  std::string out(lzma_stream_buffer_bound(s.size()), '\0');
  size_t pos = 0;
  lzma_ret r = lzma_easy_buffer_encode(1, LZMA_CHECK_CRC64, nullptr,
                                       reinterpret_cast<const uint8_t*>(s.data()), s.size(),
                                       reinterpret_cast<uint8_t*>(&out[0]), &pos, out.size());
  EXPECT_EQ(r, LZMA_OK);
  out.resize(pos);
  return out;
}

// A data dir with all three named sets; c4 has 1102 docs so the 1100 cut shows.
struct DataDir {
  std::string root;
  std::string c4_expected;
  DataDir() {
    // one dir per process: ctest -j runs the tests that share this fixture side by side
    root = (fs::path(::testing::TempDir()) / ("sq_data_fixture_" + std::to_string(::getpid()))).string();
    fs::remove_all(root);
    fs::create_directories(root + "/eval/ptb");
    fs::create_directories(root + "/eval/c4");
    fs::create_directories(root + "/eval/wikitext2");
    write_file_atomic(root + "/eval/ptb/ptb.test.txt", " a b \n c d \n");
    write_file_atomic(root + "/eval/wikitext2/wikitext2_test_gptq_join.txt", " = T = \n\n x\n");
    std::string jsonl;
    std::vector<std::string> texts;
    for (int i = 0; i < 1102; ++i) {
      nlohmann::json j = {{"text", "doc " + std::to_string(i) + "\nline\u00e9"}, {"url", "u"}};
      jsonl += j.dump() + "\n";
      if (i == 3) jsonl += "\n";  // blank lines are skipped
      if (i < 1100) texts.push_back(j["text"]);
    }
    for (size_t i = 0; i < texts.size(); ++i) c4_expected += (i ? " " : "") + texts[i];
    write_file_atomic(root + "/eval/c4/c4_validation_2k.jsonl.xz", xz_compress(jsonl));
  }
  ~DataDir() { fs::remove_all(root); }
};

}  // namespace

TEST(Dataset, PtbLinesStrippedAndJoined) {
  DataDir d;
  TextDataset ds = load_text_dataset("ptb", d.root);
  EXPECT_EQ(ds.name, "ptb");
  EXPECT_EQ(ds.source, d.root + "/eval/ptb/ptb.test.txt");
  EXPECT_EQ(ds.text, "a b c d");
  EXPECT_EQ(ds.sha256, sha256_hex(std::string("a b c d")));
  EXPECT_EQ(ds.max_windows, 0);
  EXPECT_NE(ds.note.find("ptb"), std::string::npos);
}

TEST(Dataset, C4JoinsFirst1100Texts) {
  DataDir d;
  TextDataset ds = load_text_dataset("c4-2k", d.root);
  EXPECT_EQ(ds.text, d.c4_expected);
  EXPECT_EQ(ds.text.substr(0, 25), "doc 0\nline\xC3\xA9 doc 1\nline\xC3\xA9");
  EXPECT_EQ(ds.sha256, sha256_hex(d.c4_expected));
  EXPECT_EQ(ds.max_windows, 256);
  EXPECT_NE(ds.note.find("1100"), std::string::npos) << ds.note;
}

TEST(Dataset, Wikitext2AsIsAndPlainPaths) {
  DataDir d;
  TextDataset ds = load_text_dataset("wikitext2", d.root);
  EXPECT_EQ(ds.text, " = T = \n\n x\n");
  EXPECT_EQ(ds.max_windows, 0);

  std::string head = SQ_FIXTURES_DIR "/text/wikitext2_head.txt";
  TextDataset p = load_text_dataset(head, "");
  EXPECT_EQ(p.name, head);
  EXPECT_EQ(p.source, head);
  EXPECT_EQ(p.text, read_file(head));
  EXPECT_EQ(p.sha256, sha256_file(head));
  EXPECT_FALSE(p.note.empty());
}

TEST(Dataset, XzRoundTripAndCorruption) {
  std::string dir = (fs::path(::testing::TempDir()) / "sq_xz").string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string big;
  for (int i = 0; i < 60000; ++i) big += "line " + std::to_string(i) + "\n";  // > one buffer
  std::string packed = xz_compress(big);
  write_file_atomic(dir + "/ok.xz", packed);
  EXPECT_EQ(read_xz_file(dir + "/ok.xz"), big);
  write_file_atomic(dir + "/empty.xz", xz_compress(""));
  EXPECT_EQ(read_xz_file(dir + "/empty.xz"), "");

  std::string flipped = packed;
  flipped[flipped.size() / 2] ^= 0x55;
  write_file_atomic(dir + "/bad.xz", flipped);
  std::string e = error_of([&] { read_xz_file(dir + "/bad.xz"); });
  EXPECT_NE(e.find(dir + "/bad.xz"), std::string::npos) << e;

  write_file_atomic(dir + "/cut.xz", packed.substr(0, packed.size() / 2));
  e = error_of([&] { read_xz_file(dir + "/cut.xz"); });
  EXPECT_NE(e.find(dir + "/cut.xz"), std::string::npos) << e;

  write_file_atomic(dir + "/plain.xz", "just text, not xz");
  e = error_of([&] { read_xz_file(dir + "/plain.xz"); });
  EXPECT_NE(e.find(dir + "/plain.xz"), std::string::npos) << e;

  e = error_of([&] { read_xz_file(dir + "/missing.xz"); });
  EXPECT_NE(e.find(dir + "/missing.xz"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(Dataset, Errors) {
  DataDir d;
  std::string e = error_of([&] { load_text_dataset("wikitext103", d.root); });
  EXPECT_EQ(e, "unknown dataset 'wikitext103' (known: wikitext2, ptb, c4-2k; or give a path to a text file)");

  fs::remove(d.root + "/eval/ptb/ptb.test.txt");
  e = error_of([&] { load_text_dataset("ptb", d.root); });
  EXPECT_NE(e.find(d.root + "/eval/ptb/ptb.test.txt"), std::string::npos) << e;
  EXPECT_NE(e.find("--data-dir"), std::string::npos) << e;

  e = error_of([&] { load_text_dataset("ptb", "/nonexistent/data"); });
  EXPECT_NE(e.find("/nonexistent/data"), std::string::npos) << e;
  EXPECT_THROW(resolve_data_dir("/nonexistent/data"), Error);
  EXPECT_EQ(resolve_data_dir(d.root), d.root);

  // A corrupt c4 file names the path.
  std::string c4 = d.root + "/eval/c4/c4_validation_2k.jsonl.xz";
  std::string packed = read_file(c4);
  packed[packed.size() / 2] ^= 0x55;
  write_file_atomic(c4, packed);
  e = error_of([&] { load_text_dataset("c4-2k", d.root); });
  EXPECT_NE(e.find(c4), std::string::npos) << e;

  // Bad JSON names the path and line.
  write_file_atomic(c4, xz_compress("{\"text\": \"a\"}\n{oops\n"));
  e = error_of([&] { load_text_dataset("c4-2k", d.root); });
  EXPECT_NE(e.find(c4 + " line 2"), std::string::npos) << e;
}

TEST(Dataset, DataDirFromEnvironment) {
  DataDir d;
  const char* old = std::getenv("SQ_DATA_DIR");
  std::string saved = old ? old : "";
  ::setenv("SQ_DATA_DIR", d.root.c_str(), 1);
  EXPECT_EQ(resolve_data_dir(""), d.root);
  EXPECT_EQ(load_text_dataset("ptb", "").text, "a b c d");
  if (old) ::setenv("SQ_DATA_DIR", saved.c_str(), 1); else ::unsetenv("SQ_DATA_DIR");
}

// The real files, when this machine has shared/data (skipped on a fresh clone).
TEST(Dataset, SharedDataWhenPresent) {
  std::string root = SQ_SOURCE_DIR "/../shared/data";
  if (!fs::exists(root + "/eval/wikitext2/wikitext2_test_gptq_join.txt")) GTEST_SKIP() << "no " << root;
  TextDataset w = load_text_dataset("wikitext2", root);
  EXPECT_EQ(w.sha256, "696cca6b65a171b0a358a4be6732cdfdf2dd6164a32e20fd70e3c13fc4dfae83");
  EXPECT_EQ(w.text.substr(0, read_file(SQ_FIXTURES_DIR "/text/wikitext2_head.txt").size()),
            read_file(SQ_FIXTURES_DIR "/text/wikitext2_head.txt"));
  TextDataset p = load_text_dataset("ptb", root);
  EXPECT_EQ(p.text.substr(0, 27), "no it was n't black monday ");
  EXPECT_EQ(p.text.find("  "), std::string::npos);
  // Hashes of the same strings built in Python (" ".join(l.strip() for l in f), and
  // " ".join(json.loads(l)["text"] for the first 1100 lines)).
  EXPECT_EQ(p.sha256, "900cfc61a7a63afcd086c5e1cce90554764eae65cb2ca9f5d4cac47be5f0f394");
  TextDataset c = load_text_dataset("c4-2k", root);
  EXPECT_EQ(c.max_windows, 256);
  EXPECT_EQ(c.sha256, "54e79acbe4a422ed3e21f4ad2951c1910d7e9373c095ec502822bcd8b5d963b3");
}
