// data/dataset: evaluation and calibration texts by name or path.
// Names resolve under a data directory laid out like shared/data (see its README):
//   wikitext2 -> eval/wikitext2/wikitext2_test_gptq_join.txt   (used as is)
//   ptb       -> eval/ptb/ptb.test.txt   (lines stripped, joined with " ", as GPTQ does)
//   c4-2k     -> eval/c4/c4_validation_2k.jsonl.xz  (" ".join of the first 1100 "text"
//                fields, first 256 windows scored: the "c4_new" layout on our 2k subset)
// Anything else is a path to a UTF-8 text file, used as is.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sq {

struct TextDataset {
  std::string name;      // "wikitext2", or the file path given
  std::string source;    // the file read
  std::string text;      // the exact string that is tokenized
  std::string sha256;    // of text
  int64_t max_windows = 0;  // 0 = all windows; c4-2k: 256
  std::string note;      // how the text was built, for reports
};

// data_dir may be empty: then $SQ_DATA_DIR, then ../shared/data, then ./data are tried.
TextDataset load_text_dataset(const std::string& name_or_path, const std::string& data_dir);

// Text for calibration by name: c4-2k -> the documents after the 1100 used for evaluation;
// ptb -> ptb.valid.txt; wikitext2 -> the test text (with a warning in note: no train split
// is bundled); anything else -> a text file path.
TextDataset load_calibration_text(const std::string& name_or_path, const std::string& data_dir);

// Random calibration windows (GPTQ style) from a token stream: SAMPLES windows of SEQLEN
// tokens starting at uniformly drawn offsets (std::mt19937_64 seeded with SEED).
struct CalibrationSet {
  std::string source;         // dataset name or path
  std::string text_sha256;
  std::string sha256;         // of the windows' token ids (int64 little-endian)
  uint64_t seed = 0;
  int64_t samples = 0, seqlen = 0;
  std::vector<int64_t> ids;   // samples * seqlen, row-major
  std::string note;
};
CalibrationSet make_calibration_set(const std::vector<int64_t>& tokens, int64_t samples, int64_t seqlen,
                                    uint64_t seed);

// The data directory that would be used (throws Error listing the candidates if none exists).
std::string resolve_data_dir(const std::string& data_dir);

// Reads a whole .xz file (liblzma); throws Error naming the path on a corrupt stream.
std::string read_xz_file(const std::string& path);

}  // namespace sq
