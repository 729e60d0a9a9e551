// Tests of the core layer: hashing, atomic writes, dtype names, durations.
#include <gtest/gtest.h>

#include <cstdio>

#include "sliderquant/core/error.h"
#include "sliderquant/core/progress.h"
#include "sliderquant/core/util.h"

using namespace sq;

TEST(Core, Sha256KnownVectors) {
  EXPECT_EQ(sha256_hex(std::string()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex(std::string("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 56 bytes: the padding spills into a second block.
  EXPECT_EQ(sha256_hex(std::string("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Core, AtomicWriteReplacesWholeFile) {
  std::string path = ::testing::TempDir() + "sq_atomic.txt";
  write_file_atomic(path, "first");
  write_file_atomic(path, "second");
  EXPECT_EQ(read_file(path), "second");
  std::remove(path.c_str());
  EXPECT_THROW(write_file_atomic("/nonexistent-dir/x.txt", "x"), Error);
  EXPECT_THROW(read_file("/nonexistent-dir/x.txt"), Error);
}

TEST(Core, DtypeNames) {
  EXPECT_EQ(parse_dtype("bf16"), c10::kBFloat16);
  EXPECT_EQ(parse_dtype("float32"), c10::kFloat);
  EXPECT_EQ(parse_dtype("fp16"), c10::kHalf);
  EXPECT_THROW(parse_dtype("int3"), UsageError);
  EXPECT_EQ(dtype_name(c10::kBFloat16), "bfloat16");
}

TEST(Core, Durations) {
  EXPECT_EQ(format_duration(5.25), "5.2s");
  EXPECT_EQ(format_duration(125), "2m05s");
  EXPECT_EQ(format_duration(7260), "2h01m");
}
