// SPDX-License-Identifier: GPL-3.0-or-later
// The safetensors reader/writer: bit-exact round trips, the exact bytes of the format, and a clear
// UserError naming the file for every kind of damaged file.
#include "core/io/safetensors.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/util/error.h"
#include "test_support.h"

namespace mmlab {
namespace {

namespace fs = std::filesystem;
using Named = std::vector<std::pair<std::string, torch::Tensor>>;

std::string bytes_of(const torch::Tensor& t) {
  torch::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A file as the format defines it, built without the code under test.
std::string make_file(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + data;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A tensor of `dtype` whose bytes are all distinct-ish and, for floats, include the values a
// careless conversion would lose: -0, ±inf, NaN, a subnormal.
torch::Tensor sample(torch::ScalarType dtype) {
  torch::manual_seed(7);
  if (dtype == torch::kBool) return torch::rand({3, 5}) > 0.5;
  if (dtype == torch::kUInt8) return torch::randint(0, 256, {3, 5}, torch::kUInt8);
  if (!c10::isFloatingType(dtype)) {
    auto t = torch::randint(-100000, 100000, {3, 5}, torch::kInt64).to(dtype);
    return t;
  }
  auto t = torch::randn({3, 5}, torch::kFloat64).to(dtype);
  auto flat = t.view({-1});
  flat[0].fill_(-0.0);
  flat[1].fill_(std::numeric_limits<double>::infinity());
  flat[2].fill_(-std::numeric_limits<double>::infinity());
  flat[3].fill_(std::numeric_limits<double>::quiet_NaN());
  flat[4].fill_(
      1e-40);  // subnormal in F32, flushes to 0 or stays subnormal elsewhere: bytes decide
  return t;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
};

TEST_F(SafetensorsTest, RoundTripIsBitExactForEveryDtype) {
  const torch::ScalarType dtypes[] = {
      torch::kFloat32, torch::kFloat64, torch::kBFloat16, torch::kFloat16, torch::kInt64,
      torch::kInt32,   torch::kInt16,   torch::kInt8,     torch::kUInt8,   torch::kBool};
  Named tensors;
  for (auto dtype : dtypes) tensors.emplace_back(safetensors_dtype_name(dtype), sample(dtype));
  const fs::path path = dir_ / "all.safetensors";
  save_safetensors(path, tensors);
  SafetensorsFile f = load_safetensors(path);
  EXPECT_EQ(f.path, path);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].first);
    EXPECT_EQ(f.tensors[i].first, tensors[i].first);
    const torch::Tensor& got = f.tensors[i].second;
    EXPECT_EQ(got.scalar_type(), tensors[i].second.scalar_type());
    EXPECT_EQ(got.sizes(), tensors[i].second.sizes());
    EXPECT_TRUE(got.device().is_cpu());
    EXPECT_EQ(bytes_of(got), bytes_of(tensors[i].second));  // NaN != NaN, so compare bytes
  }
  EXPECT_TRUE(f.metadata.empty());
}

TEST_F(SafetensorsTest, ZeroDimAndEmptyTensorsKeepShapeAndOrder) {
  Named tensors = {
      {"scalar", torch::tensor(3.5, torch::kFloat32).reshape({})},
      {"empty", torch::empty({0}, torch::kFloat32)},
      {"between", torch::arange(4, torch::kInt32)},
      {"empty2d", torch::empty({2, 0, 3}, torch::kBFloat16)},
      {"also_empty", torch::empty({0}, torch::kInt64)},
  };
  const fs::path path = dir_ / "shapes.safetensors";
  save_safetensors(path, tensors);
  SafetensorsFile f = load_safetensors(path);
  ASSERT_EQ(f.tensors.size(), 5u);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    // Empty tensors share an offset with their neighbour; they still come back in write order.
    EXPECT_EQ(f.tensors[i].first, tensors[i].first);
    EXPECT_EQ(f.tensors[i].second.sizes(), tensors[i].second.sizes());
    EXPECT_EQ(f.tensors[i].second.scalar_type(), tensors[i].second.scalar_type());
  }
  EXPECT_EQ(f.at("scalar").dim(), 0);
  EXPECT_EQ(f.at("scalar").item<float>(), 3.5f);
  EXPECT_TRUE(torch::equal(f.at("between"), torch::arange(4, torch::kInt32)));
}

TEST_F(SafetensorsTest, NonContiguousInputIsWrittenInLogicalOrder) {
  torch::Tensor base = torch::arange(24, torch::kFloat32).reshape({4, 6});
  Named tensors = {
      {"transposed", base.t()},
      {"strided", base.slice(1, 0, 6, 2)},
      {"expanded", torch::arange(3, torch::kInt64).unsqueeze(0).expand({4, 3})},
      {"offset_view", base[2]},
      {"requires_grad", torch::ones({2}, torch::requires_grad())},
  };
  ASSERT_FALSE(tensors[0].second.is_contiguous());
  const fs::path path = dir_ / "views.safetensors";
  save_safetensors(path, tensors);
  SafetensorsFile f = load_safetensors(path);
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(f.at(name).is_contiguous());
    EXPECT_TRUE(torch::equal(f.at(name), t.detach()));
  }
  EXPECT_FALSE(f.at("requires_grad").requires_grad());
}

TEST_F(SafetensorsTest, MetadataRoundTrips) {
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"config", R"({"d_model": 64, "pattern": "M E"})"},
      {"empty", ""},
      {"unicode", "Mamba \xce\xbc \xe2\x80\x94 ok"},
  };
  const fs::path path = dir_ / "meta.safetensors";
  save_safetensors(path, {{"w", torch::ones({2})}}, metadata);
  EXPECT_EQ(load_safetensors(path).metadata, metadata);

  // Metadata alone, no tensors, is a valid file too.
  save_safetensors(path, {}, metadata);
  SafetensorsFile f = load_safetensors(path);
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_EQ(f.metadata, metadata);
}

TEST_F(SafetensorsTest, WrittenBytesAreExactlyTheFormat) {
  torch::Tensor a = torch::tensor({1.0f, -2.0f}, torch::kFloat32);  // 8 bytes
  torch::Tensor b = torch::tensor({258}, torch::kInt16);            // 2 bytes: 0x02 0x01
  const fs::path path = dir_ / "exact.safetensors";
  save_safetensors(path, {{"b", b}, {"a", a}}, {{"k", "v"}});

  // Keys keep their write order (metadata first), compact JSON, spaces up to a multiple of 8.
  const std::string json =
      R"({"__metadata__":{"k":"v"},"b":{"dtype":"I16","shape":[1],"data_offsets":[0,2]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}})";
  std::string header = json;
  header.append((8 - json.size() % 8) % 8, ' ');
  ASSERT_EQ(header.size() % 8, 0u);
  std::string data = std::string("\x02\x01", 2);
  data += std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);  // 1.0f, -2.0f little-endian
  EXPECT_EQ(slurp(path), le64(header.size()) + header + data);
}

TEST_F(SafetensorsTest, ReadsAHandBuiltFile) {
  // Written the way another writer might: keys in a different order from the data, whitespace,
  // a 0-d tensor and an empty one, and a header padded with spaces.
  const std::string header = R"({
    "z": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]},
    "__metadata__": {"format": "pt"},
    "y": {"shape": [], "data_offsets": [0, 4], "dtype": "I32"},
    "x": {"dtype": "U8", "shape": [0, 7], "data_offsets": [8, 8]},
    "w": {"dtype": "BOOL", "shape": [3], "data_offsets": [8, 11]}
  })";
  std::string data;
  data += std::string("\x2a\x00\x00\x00", 4);  // y = 42
  data += std::string("\x80\x3f\x00\xc0", 4);  // z = [1.0, -2.0] in bfloat16
  data += std::string("\x01\x00\x01", 3);      // w = [true, false, true]
  const fs::path path = dir_ / "hand.safetensors";
  spit(path, make_file(header, data));

  SafetensorsFile f = load_safetensors(path);
  ASSERT_EQ(f.tensors.size(), 4u);
  // Data-section order; x and w share offset 8, and x comes first in the header.
  EXPECT_EQ(f.tensors[0].first, "y");
  EXPECT_EQ(f.tensors[1].first, "z");
  EXPECT_EQ(f.tensors[2].first, "x");
  EXPECT_EQ(f.tensors[3].first, "w");
  EXPECT_EQ(f.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(f.at("y").dim(), 0);
  EXPECT_EQ(f.at("y").scalar_type(), torch::kInt32);
  EXPECT_EQ(f.at("y").item<int>(), 42);
  EXPECT_EQ(f.at("z").scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(f.at("z").to(torch::kFloat32), torch::tensor({1.0f, -2.0f})));
  EXPECT_EQ(f.at("x").sizes(), (std::vector<std::int64_t>{0, 7}));
  EXPECT_TRUE(torch::equal(f.at("w"), torch::tensor({true, false, true})));
  EXPECT_TRUE(f.contains("w"));
  EXPECT_FALSE(f.contains("v"));
}

TEST_F(SafetensorsTest, MissingTensorAndMissingFileNameTheFile) {
  const fs::path path = dir_ / "small.safetensors";
  save_safetensors(path, {{"a", torch::zeros({1})}});
  SafetensorsFile f = load_safetensors(path);
  try {
    f.at("nope");
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(e.message().find(path.string()), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("\"nope\""), std::string::npos) << e.what();
  }
  try {
    load_safetensors(dir_.path());
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(e.message().find("not a regular file"), std::string::npos) << e.what();
  }
  const fs::path missing = dir_ / "missing.safetensors";
  try {
    load_safetensors(missing);
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(e.message().find(missing.string()), std::string::npos) << e.what();
  }
}

struct CorruptCase {
  const char* name;
  std::string bytes;
  const char* expect;  // a fragment the message must contain besides the file name
};

std::vector<CorruptCase> corrupt_cases() {
  const std::string ok_data(8, '\0');
  auto file = [&](const std::string& header, const std::string& data) {
    return make_file(header, data);
  };
  return {
      {"empty", "", "truncated"},
      {"short_length", std::string("\x08\x00\x00", 3), "truncated"},
      {"length_beyond_end", le64(1000) + "{}      ", "runs past the end"},
      {"huge_length", le64(~0ull) + "{}", "runs past the end"},
      {"malformed_json", file(R"({"a": {"dtype": "F32",)", ok_data), "malformed JSON"},
      {"not_an_object", file("[1, 2]", ""), "not a JSON object"},
      {"unknown_dtype", file(R"({"a":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}})", ok_data),
       "F128"},
      {"dtype_not_string", file(R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", ok_data),
       "dtype"},
      {"missing_field", file(R"({"a":{"dtype":"F32","shape":[2]}})", ok_data), "data_offsets"},
      {"negative_shape",
       file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", ok_data), "shape"},
      {"offsets_not_pair", file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", ok_data),
       "data_offsets"},
      {"end_beyond_data",
       file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", ok_data),
       "outside the data section"},
      {"begin_after_end",
       file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", ok_data),
       "outside the data section"},
      {"size_mismatch", file(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", ok_data),
       "needs 16"},
      {"shape_overflow",
       file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
            ok_data),
       "2^64"},
      {"overlap",
       file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            ok_data),
       "overlapping"},
      {"hole", file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", ok_data),
       "belong to no tensor"},
      {"trailing_bytes", file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", ok_data),
       "after its last tensor"},
      {"duplicate_name",
       file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
            R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            ok_data),
       "twice"},
      {"metadata_not_string", file(R"({"__metadata__":{"n":3}})", ""), "not a string"},
      {"metadata_not_object", file(R"({"__metadata__":"x"})", ""), "__metadata__"},
  };
}

TEST_F(SafetensorsTest, EveryCorruptFileIsAUserErrorNamingTheFile) {
  for (const auto& c : corrupt_cases()) {
    SCOPED_TRACE(c.name);
    const fs::path path = dir_ / (std::string(c.name) + ".safetensors");
    spit(path, c.bytes);
    try {
      load_safetensors(path);
      ADD_FAILURE() << c.name << ": expected a UserError";
    } catch (const UserError& e) {
      const std::string msg = e.message();
      EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
      EXPECT_EQ(e.code(), kExitBadInput);
      // One sentence: no line breaks (nlohmann's own message is embedded for malformed JSON).
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }
}

TEST_F(SafetensorsTest, BadTensorsAreRefusedBeforeAnythingIsWritten) {
  const fs::path path = dir_ / "refused.safetensors";
  const std::vector<std::pair<Named, const char*>> cases = {
      {{{"a", torch::zeros({1})}, {"a", torch::zeros({1})}}, "twice"},
      {{{"__metadata__", torch::zeros({1})}}, "not allowed"},
      {{{"", torch::zeros({1})}}, "not allowed"},
      {{{"c", torch::zeros({2}, torch::kComplexFloat)}}, "\"c\""},
      {{{"u", torch::Tensor()}}, "undefined"},
  };
  for (const auto& [tensors, expect] : cases) {
    try {
      save_safetensors(path, tensors);
      ADD_FAILURE() << "expected a UserError for " << expect;
    } catch (const UserError& e) {
      EXPECT_NE(e.message().find(expect), std::string::npos) << e.message();
      EXPECT_NE(e.message().find(path.string()), std::string::npos) << e.message();
    }
  }
  EXPECT_TRUE(names_in(dir_.path()).empty());
}

TEST_F(SafetensorsTest, UnwritableDirectoryLeavesNothingBehind) {
  const fs::path path = dir_ / "no_such_dir" / "m.safetensors";
  try {
    save_safetensors(path, {{"a", torch::zeros({4})}});
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(e.message().find(path.string()), std::string::npos) << e.message();
  }
  EXPECT_TRUE(names_in(dir_.path()).empty());
}

TEST_F(SafetensorsTest, FailureMidWriteKeepsTheOldFileAndNoTempFile) {
  const fs::path path = dir_ / "model.safetensors";
  save_safetensors(path, {{"old", torch::ones({4})}});
  const std::string before = slurp(path);

  // A file-size limit makes write() fail with EFBIG halfway through the data (SIGXFSZ ignored,
  // so the process lives): the same path as a disk filling up.
  struct rlimit saved {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  bool threw = false;
  try {
    save_safetensors(path, {{"new", torch::ones({100000})}});
  } catch (const UserError& e) {
    threw = true;
    EXPECT_NE(e.message().find(path.string()), std::string::npos) << e.message();
  }
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_TRUE(threw);
  EXPECT_EQ(slurp(path), before);
  EXPECT_EQ(names_in(dir_.path()), std::vector<std::string>{"model.safetensors"});
  EXPECT_TRUE(load_safetensors(path).contains("old"));
}

TEST_F(SafetensorsTest, OverwritingReplacesTheFile) {
  const fs::path path = dir_ / "m.safetensors";
  save_safetensors(path, {{"a", torch::zeros({1000})}});
  save_safetensors(path, {{"b", torch::ones({2})}});
  SafetensorsFile f = load_safetensors(path);
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors[0].first, "b");
  EXPECT_EQ(names_in(dir_.path()), std::vector<std::string>{"m.safetensors"});
}

}  // namespace
}  // namespace mmlab
