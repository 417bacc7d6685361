// The safetensors reader on hand-made files: a round trip through WriteSafetensors, and headers whose
// numbers lie (sizes that overflow, dimensions beyond int64) that must be refused, not believed.
#include "core/model/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "tests/testing/temp_dir.h"

namespace moke {
namespace {

using ::testing::HasSubstr;

// 8-byte little-endian length + header + data, as the format lays it out.
std::string Make(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> ParseString(const std::string& bytes) {
  return SafetensorsFile::Parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem.safetensors");
}

TEST(SafetensorsTest, RoundTripThroughWriter) {
  testing::TempDir dir("st_roundtrip");
  const float f[3] = {1.5f, -2.0f, 3.25f};
  const int64_t i[2] = {-7, 1ll << 40};
  std::vector<TensorBlob> blobs = {
      {"b.floats", DType::kF32, {3}, std::string(reinterpret_cast<const char*>(f), sizeof(f))},
      {"a.ints", DType::kI64, {1, 2}, std::string(reinterpret_cast<const char*>(i), sizeof(i))},
      {"c.scalar", DType::kU8, {}, std::string(1, '\x2a')},
      {"d.empty", DType::kBF16, {0, 4}, ""},
  };
  ASSERT_TRUE(WriteSafetensors(dir / "t.safetensors", blobs).ok());
  auto file = SafetensorsFile::Open(dir / "t.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const auto& t = (*file)->tensors();
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t.at("b.floats").dtype, DType::kF32);
  EXPECT_EQ(t.at("b.floats").shape, std::vector<int64_t>{3});
  float got[3];
  std::memcpy(got, (*file)->DataOf(t.at("b.floats")), sizeof(got));
  EXPECT_EQ(got[2], 3.25f);
  int64_t gi[2];
  std::memcpy(gi, (*file)->DataOf(t.at("a.ints")), sizeof(gi));
  EXPECT_EQ(gi[1], 1ll << 40);
  EXPECT_EQ(t.at("c.scalar").NumElements(), 1);
  EXPECT_EQ(*(*file)->DataOf(t.at("c.scalar")), 0x2a);
  EXPECT_EQ(t.at("d.empty").NumElements(), 0);
}

TEST(SafetensorsTest, OpenMissingFileNamesIt) {
  auto file = SafetensorsFile::Open("/nonexistent/dir/x.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("/nonexistent/dir/x.safetensors"));
}

TEST(SafetensorsTest, MetadataKept) {
  auto file = ParseString(Make(R"({"__metadata__":{"format":"pt","n":3},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                               std::string(4, '\0')));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->tensors().size(), 1u);
}

// Regression: the element count was bounded by 2^64 / 4, so an 8-byte dtype could wrap around
// elems * 8 to a small byte count that matched the data_offsets: a 2^61 + 1 element I64 tensor in
// 8 bytes was accepted, and NumElements() promised 2^61 + 1 values behind DataOf().
TEST(SafetensorsTest, ElementCountTimesDtypeSizeMayNotWrap) {
  auto file = ParseString(
      Make(R"({"x":{"dtype":"I64","shape":[2305843009213693953],"data_offsets":[0,8]}})", std::string(8, '\0')));
  ASSERT_FALSE(file.ok()) << "accepted " << (*file)->tensors().at("x").NumElements() << " elements in 8 bytes";
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("\"x\""));
  // Two dimensions whose product wraps for 8-byte elements.
  file = ParseString(
      Make(R"({"y":{"dtype":"I64","shape":[4294967296,536870913],"data_offsets":[0,8]}})", std::string(8, '\0')));
  EXPECT_FALSE(file.ok());
}

// Regression: after a zero dimension the overflow check was skipped, so a dimension of 2^63 was
// accepted and stored as a negative int64 in TensorInfo::shape.
TEST(SafetensorsTest, DimensionsBeyondInt64Refused) {
  auto file = ParseString(
      Make(R"({"z":{"dtype":"F32","shape":[0,9223372036854775808],"data_offsets":[0,0]}})", ""));
  if (file.ok()) {
    for (int64_t d : (*file)->tensors().at("z").shape) EXPECT_GE(d, 0) << "negative dimension in TensorInfo";
  }
  EXPECT_FALSE(file.ok());
}

TEST(SafetensorsTest, LyingHeadersRefusedWithTensorName) {
  const std::string data(16, '\0');
  struct Case {
    std::string header, want;
  } cases[] = {
      {R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,20]}})", "beyond"},
      {R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}})", "beyond"},
      {R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", "does not match"},
      {R"({"t":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", "non-negative"},
      {R"({"t":{"dtype":"F32","shape":[4.0],"data_offsets":[0,16]}})", "non-negative"},
      {R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0]}})", "data_offsets"},
      {R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,-16]}})", "data_offsets"},
      {R"({"t":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}})", "Q4"},
      {R"({"t":{"shape":[4],"data_offsets":[0,16]}})", "dtype"},
      {R"({"t":{"dtype":"F32","data_offsets":[0,16]}})", "shape"},
      {R"({"t":[1,2,3]})", "not an object"},
  };
  for (const auto& c : cases) {
    auto file = ParseString(Make(c.header, data));
    ASSERT_FALSE(file.ok()) << c.header;
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << c.header;
    EXPECT_THAT(std::string(file.status().message()), HasSubstr("mem.safetensors: tensor \"t\"")) << c.header;
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(c.want)) << c.header;
  }
}

}  // namespace
}  // namespace moke
