// Tests of io/safetensors: round trips of every dtype, metadata and header alignment;
// sharded checkpoints and the index file; strict validation of hand-built corrupt files;
// the stories260K fixtures (F32 and BF16); atomic writes that leave nothing behind.
#include <ATen/ATen.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/safetensors.h"

using namespace sq;

namespace {

// A fresh, empty directory under the gtest temp dir.
std::string fresh_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "sq_st_" + name + "_" + std::to_string(::getpid());
  std::string cmd = "rm -rf '" + d + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(::mkdir(d.c_str(), 0755), 0);
  return d;
}

void remove_tree(const std::string& d) {
  std::string cmd = "rm -rf '" + d + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}

std::vector<std::string> list_dir(const std::string& d) {
  std::vector<std::string> out;
  DIR* dir = ::opendir(d.c_str());
  if (!dir) return out;
  while (dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

// Writes u64 LE header length + header + data bytes.
void write_raw(const std::string& path, const std::string& header, const std::string& data,
               int64_t len_override = -1) {
  uint64_t n = len_override >= 0 ? uint64_t(len_override) : header.size();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char(uint8_t(n >> (8 * i)));
  bytes += header;
  bytes += data;
  write_file_atomic(path, bytes);
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  at::Tensor ca = a.contiguous(), cb = b.contiguous();
  const size_t n = size_t(ca.numel() * ca.element_size());  // zero-size tensors may have no storage
  return n == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), n) == 0;
}

uint64_t header_len(const std::string& path) {
  std::string b = read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(b[size_t(i)]);
  return n;
}

// Expects open(path) to throw an sq::Error whose message has `word` and the path.
void expect_open_error(const std::string& path, const std::string& word) {
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "no error for " << path << " (expected '" << word << "')";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(word), std::string::npos) << "message: " << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << "message: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message: " << msg;
  }
}

NamedTensors all_dtypes() {
  at::manual_seed(7);
  NamedTensors t;
  t.emplace_back("f32", at::randn({3, 5}));
  t.emplace_back("f16", at::randn({4, 2}).to(at::kHalf));
  t.emplace_back("bf16", at::randn({7}).to(at::kBFloat16));
  t.emplace_back("f64", at::randn({2, 3}, at::kDouble));
  t.emplace_back("i8", at::randint(-128, 128, {9}, at::kChar));
  t.emplace_back("u8", at::randint(0, 256, {3, 3}, at::kByte));
  t.emplace_back("i16", at::randint(-30000, 30000, {5}, at::kShort));
  t.emplace_back("i32", at::randint(-100000, 100000, {2, 2, 2}, at::kInt));
  t.emplace_back("i64", at::randint(-1000000, 1000000, {3}, at::kLong));
  t.emplace_back("bool", at::rand({11}) > 0.5);
  t.emplace_back("scalar", at::scalar_tensor(3.25));
  t.emplace_back("empty", at::zeros({0, 4}));
  t.emplace_back("transposed", at::randn({3, 4}).t());  // non-contiguous input
  return t;
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  std::string dir = fresh_dir("rt");
  std::string path = dir + "/all.safetensors";
  NamedTensors in = all_dtypes();
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "é \"quoted\""}};
  write_safetensors(path, in, meta);

  EXPECT_EQ((8 + header_len(path)) % 8, 0u);
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->metadata(), meta);
  ASSERT_EQ(f->tensors().size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(f->tensors()[i].name, in[i].first);  // data in the given order
    at::Tensor t = f->tensor(in[i].first);
    EXPECT_TRUE(same_bits(t, in[i].second)) << in[i].first;
    EXPECT_EQ(t.device(), at::kCPU);
  }
  EXPECT_EQ(f->tensor("scalar").dim(), 0);
  EXPECT_EQ(f->tensor("scalar").item<double>(), 3.25);
  EXPECT_EQ(f->tensor("empty").numel(), 0);
  EXPECT_EQ(f->info("bool").dtype, StDType::BOOL);
  EXPECT_EQ(f->info("bf16").dtype, StDType::BF16);
  EXPECT_EQ(f->info("i32").nbytes(), 32u);
  EXPECT_EQ(f->find("missing"), nullptr);
  EXPECT_THROW(f->tensor("missing"), Error);

  // Zero-copy view of the mapping, copy-on-write, and alive after the file object is gone.
  at::Tensor v = f->tensor("f32");
  const uint8_t* p = static_cast<const uint8_t*>(v.data_ptr());
  EXPECT_EQ(p, f->data_area() + f->info("f32").begin);
  v.zero_();
  f.reset();
  EXPECT_EQ(v.abs().sum().item<float>(), 0.0f);
  auto g = SafetensorsFile::open(path);
  EXPECT_TRUE(same_bits(g->tensor("f32"), in[0].second));

  // No metadata: no __metadata__ key in the header.
  write_safetensors(path, {{"x", at::ones({2})}});
  EXPECT_EQ(read_file(path).find("__metadata__"), std::string::npos);
  EXPECT_TRUE(SafetensorsFile::open(path)->metadata().empty());
  remove_tree(dir);
}

TEST(Safetensors, ZeroTensorFileAndMisalignedData) {
  std::string dir = fresh_dir("small");
  write_safetensors(dir + "/none.safetensors", {});
  auto f = SafetensorsFile::open(dir + "/none.safetensors");
  EXPECT_TRUE(f->tensors().empty());

  // Header of 9 bytes: the data area starts at offset 17, misaligned for F32 -> a copy.
  float vals[2] = {1.5f, -2.0f};
  std::string data(reinterpret_cast<const char*>(vals), sizeof vals);
  std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  while ((8 + h.size()) % 8 != 1) h += ' ';
  write_raw(dir + "/mis.safetensors", h, data);
  auto m = SafetensorsFile::open(dir + "/mis.safetensors");
  at::Tensor a = m->tensor("a");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data_ptr()) % 4, 0u);
  EXPECT_EQ(a[0].item<float>(), 1.5f);
  EXPECT_EQ(a[1].item<float>(), -2.0f);
  remove_tree(dir);
}

TEST(Safetensors, ShardedRoundTrip) {
  std::string dir = fresh_dir("shard");
  at::manual_seed(1);
  NamedTensors in;
  in.emplace_back("a", at::randn({100}));              // 400 bytes
  in.emplace_back("b", at::randn({100}));              // 400
  in.emplace_back("big", at::randn({500}));            // 2000: larger than the cap
  in.emplace_back("c", at::randn({10, 10}).to(at::kBFloat16));  // 200
  in.emplace_back("d", at::randn({100}));              // 400
  in.emplace_back("e", at::randint(0, 9, {100}, at::kLong));    // 800
  std::map<std::string, std::string> meta = {{"format", "pt"}};
  auto names = write_checkpoint(dir, in, meta, 900);
  std::vector<std::string> expect_names = {
      "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
      "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors",
      "model.safetensors.index.json"};
  EXPECT_EQ(names, expect_names);
  EXPECT_EQ(list_dir(dir), expect_names);  // nothing else: no temp files

  auto idx = nlohmann::json::parse(read_file(dir + "/model.safetensors.index.json"));
  EXPECT_EQ(idx["metadata"]["total_size"].get<uint64_t>(), 400u + 400 + 2000 + 200 + 400 + 800);
  const auto& wm = idx["weight_map"];
  EXPECT_EQ(wm.size(), in.size());
  EXPECT_EQ(wm["a"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(wm["b"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(wm["big"], "model-00002-of-00004.safetensors");
  EXPECT_EQ(wm["c"], "model-00003-of-00004.safetensors");
  EXPECT_EQ(wm["d"], "model-00003-of-00004.safetensors");
  EXPECT_EQ(wm["e"], "model-00004-of-00004.safetensors");

  Checkpoint ck = Checkpoint::open(dir);
  EXPECT_EQ(ck.files().size(), 4u);
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b", "big", "c", "d", "e"}));
  for (const auto& [name, t] : in) {
    EXPECT_TRUE(ck.has(name));
    EXPECT_TRUE(same_bits(ck.get(name), t)) << name;
  }
  EXPECT_EQ(ck.metadata(), meta);
  EXPECT_EQ(ck.info("big").nbytes(), 2000u);
  try {
    ck.get("lm_head.weight");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lm_head.weight not found in " + dir),
              std::string::npos) << e.what();
  }

  // Under the cap: one model.safetensors, and the stale index is gone.
  EXPECT_EQ(write_checkpoint(dir, in, meta, 1 << 20),
            std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(path_exists(dir + "/model.safetensors.index.json"));
  Checkpoint one = Checkpoint::open(dir);
  EXPECT_EQ(one.files().size(), 1u);
  EXPECT_TRUE(same_bits(one.get("e"), in[5].second));
  remove_tree(dir);
}

TEST(Safetensors, CheckpointLayouts) {
  std::string dir = fresh_dir("layouts");
  EXPECT_THROW(Checkpoint::open(dir + "/nope"), Error);
  try {
    Checkpoint::open(dir);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no safetensors weights in " + dir), std::string::npos);
  }
  // Any *.safetensors files, sorted; a single file path.
  write_safetensors(dir + "/b.safetensors", {{"y", at::ones({2})}});
  write_safetensors(dir + "/a.safetensors", {{"x", at::zeros({3})}});
  Checkpoint ck = Checkpoint::open(dir);
  ASSERT_EQ(ck.files().size(), 2u);
  EXPECT_EQ(ck.files()[0]->path(), dir + "/a.safetensors");
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"x", "y"}));
  Checkpoint single = Checkpoint::open(dir + "/b.safetensors");
  EXPECT_EQ(single.names(), std::vector<std::string>{"y"});

  // The same name in two files.
  write_safetensors(dir + "/c.safetensors", {{"x", at::ones({1})}});
  EXPECT_THROW(Checkpoint::open(dir), Error);

  // An index naming a tensor its shard lacks.
  write_file_atomic(dir + "/model.safetensors.index.json",
                    R"({"metadata":{},"weight_map":{"x":"a.safetensors","y":"a.safetensors"}})");
  try {
    Checkpoint::open(dir);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("tensor y"), std::string::npos) << msg;
    EXPECT_NE(msg.find("a.safetensors"), std::string::npos) << msg;
  }
  write_file_atomic(dir + "/model.safetensors.index.json",
                    R"({"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})");
  EXPECT_EQ(Checkpoint::open(dir).files().size(), 2u);  // c.safetensors is not read
  // Shard names stay inside the model directory.
  for (const char* shard : {"../a.safetensors", "/tmp/a.safetensors", "sub/a.safetensors", "..", ""}) {
    write_file_atomic(dir + "/model.safetensors.index.json",
                      nlohmann::json{{"weight_map", {{"x", shard}}}}.dump());
    try {
      Checkpoint::open(dir);
      ADD_FAILURE() << shard << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not a file name inside"), std::string::npos) << e.what();
    }
  }
  remove_tree(dir);
}

TEST(Safetensors, CorruptFilesAreRejected) {
  std::string dir = fresh_dir("corrupt");
  std::string p = dir + "/bad.safetensors";
  const std::string f8(8, '\0');

  write_file_atomic(p, "abc");
  expect_open_error(p, "too short");
  write_raw(p, "{}", "", 1000);
  expect_open_error(p, "header says 1000");
  write_raw(p, "{\"a\": ", "");
  expect_open_error(p, "JSON");
  write_raw(p, "[1, 2]", "");
  expect_open_error(p, "not an object");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2]}})", f8);
  expect_open_error(p, "exactly");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", f8);
  expect_open_error(p, "exactly");
  write_raw(p, R"({"a":[1,2,3]})", f8);
  expect_open_error(p, "exactly");
  write_raw(p, R"({"a":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", f8);
  expect_open_error(p, "unknown dtype \"F8\"");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", f8);
  expect_open_error(p, "shape");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", f8);
  expect_open_error(p, "shape");
  write_raw(p, R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", f8);
  expect_open_error(p, "shape");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}})", f8);
  expect_open_error(p, "data_offsets");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", f8);
  expect_open_error(p, "begin > end");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", f8);
  expect_open_error(p, "beyond");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f8);
  expect_open_error(p, "shape");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("b":{"dtype":"I16","shape":[2],"data_offsets":[4,8]}})", f8);
  expect_open_error(p, "overlap");
  write_raw(p, R"({"__metadata__":{"k":1}})", "");
  expect_open_error(p, "__metadata__");
  write_raw(p, R"({"__metadata__":[]})", "");
  expect_open_error(p, "__metadata__");
  expect_open_error(dir + "/missing.safetensors", "cannot open");

  // As the format's own validator: no hole between tensors, no trailing bytes, no name twice
  // (a JSON parser keeps the last of duplicate keys; the first one's bytes became a hole).
  write_raw(p, R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},)"
               R"("b":{"dtype":"U8","shape":[],"data_offsets":[4,5]}})", std::string(5, '\0'));
  expect_open_error(p, "hole");
  write_raw(p, R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}})", std::string(3, '\0'));
  expect_open_error(p, "1 bytes after the last tensor");
  write_raw(p, R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},)"
               R"("a":{"dtype":"I8","shape":[2],"data_offsets":[2,4]}})", std::string(4, '\0'));
  expect_open_error(p, "names tensor a twice");
  write_raw(p, R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},"__metadata__":{"a":"x","a":"y"}})",
            std::string(2, '\0'));
  EXPECT_EQ(SafetensorsFile::open(p)->metadata().at("a"), "y");  // only tensor names must be unique

  // Still fine: zero-size tensors at a boundary, a scalar, header padding.
  write_raw(p, R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},)"
               R"("z":{"dtype":"F32","shape":[0,3],"data_offsets":[2,2]},)"
               R"("b":{"dtype":"U8","shape":[],"data_offsets":[2,3]}}   )", std::string(3, '\0'));
  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->tensor("b").dim(), 0);
  remove_tree(dir);
}

TEST(Safetensors, Stories260KFixtures) {
  auto f = SafetensorsFile::open(SQ_FIXTURES_DIR "/stories260K/hf/model.safetensors");
  const TensorInfo& e = f->info("model.embed_tokens.weight");
  EXPECT_EQ(e.dtype, StDType::F32);
  EXPECT_EQ(e.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(f->find("lm_head.weight"), nullptr);
  EXPECT_EQ(f->metadata().at("format"), "pt");

  Checkpoint f32 = Checkpoint::open(SQ_FIXTURES_DIR "/stories260K/hf");
  Checkpoint bf16 = Checkpoint::open(SQ_FIXTURES_DIR "/stories260K/hf_bf16");
  ASSERT_EQ(f32.names(), bf16.names());
  EXPECT_FALSE(f32.has("lm_head.weight"));
  for (const std::string& name : bf16.names()) {
    at::Tensor b = bf16.get(name);
    ASSERT_EQ(b.scalar_type(), at::kBFloat16) << name;
    at::Tensor a = f32.get(name);
    ASSERT_EQ(a.sizes(), b.sizes()) << name;
    at::Tensor err = (b.to(at::kFloat) - a).abs();
    EXPECT_TRUE(err.le(a.abs() / 128.0 + 1e-30).all().item<bool>()) << name;
  }
}

TEST(Safetensors, WritesAreAtomic) {
  std::string missing = ::testing::TempDir() + "sq_st_no_such_dir_" + std::to_string(::getpid());
  try {
    write_safetensors(missing + "/x.safetensors", {{"x", at::ones({4})}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing + "/x.safetensors"), std::string::npos);
  }
  EXPECT_FALSE(path_exists(missing));
  EXPECT_THROW(write_checkpoint(missing, {{"x", at::ones({4})}}, {}, 1 << 20), Error);
  EXPECT_FALSE(path_exists(missing));

  std::string dir = fresh_dir("atomic");
  std::string p = dir + "/m.safetensors";
  write_safetensors(p, {{"x", at::ones({4})}});
  write_safetensors(p, {{"y", at::zeros({2})}});  // replaces the whole file
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"m.safetensors"});
  EXPECT_EQ(SafetensorsFile::open(p)->tensors()[0].name, "y");

  // Bad input fails before anything is written.
  EXPECT_THROW(write_safetensors(dir + "/dup.safetensors", {{"x", at::ones({1})},
                                                             {"x", at::ones({1})}}),
               Error);
  EXPECT_THROW(write_safetensors(dir + "/cplx.safetensors",
                                 {{"c", at::zeros({2}, at::kComplexFloat)}}),
               Error);
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"m.safetensors"});
  remove_tree(dir);
}
