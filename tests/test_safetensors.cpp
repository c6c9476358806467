// safetensors: round trips over every supported dtype, a file written byte by byte in the test
// (independent of the writer), the writer's exact bytes, every error path of the reader, and
// loading weights into modules (strict names, shapes, the dtype rule).

#include "harness/safetensors.h"
#include "harness/model.h"
#include "core/registry.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

namespace fs = std::filesystem;

// A fresh folder per test.
std::string scratch_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::temp_directory_path() /
                 ("mixlab_safetensors_" + std::to_string(getpid()) + "_" + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string u64_le(uint64_t value) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  return bytes;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A file from a header text and a buffer of `buffer_bytes` zero bytes.
std::string file_with(const std::string& header, size_t buffer_bytes) {
  return u64_le(header.size()) + header + std::string(buffer_bytes, '\0');
}

// The message of the SafetensorsError that `f` throws ("" when it throws none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const SafetensorsError& error) {
    return error.what();
  }
  return "";
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

TEST(Safetensors, RoundTripEveryDtypeAndShape) {
  const std::string path = scratch_dir() + "/all.safetensors";
  torch::manual_seed(0);
  TensorMap tensors;
  tensors["f32.matrix"] = torch::randn({2, 3});
  tensors["f64.vector"] = torch::randn({4}, torch::kFloat64);
  tensors["bf16.matrix"] = torch::randn({3, 5}).to(torch::kBFloat16);
  tensors["f16.cube"] = torch::randn({2, 2, 2}).to(torch::kFloat16);
  tensors["i64.vector"] = torch::randint(-1000, 1000, {5}, torch::kInt64);
  tensors["i32.empty"] = torch::zeros({2, 0}, torch::kInt32);
  tensors["i16.vector"] = torch::randint(-300, 300, {3}, torch::kInt16);
  tensors["i8.vector"] = torch::randint(-100, 100, {3}, torch::kInt8);
  tensors["u8.vector"] = torch::randint(0, 255, {7}, torch::kUInt8);
  tensors["bool.vector"] = torch::rand({6}) > 0.5;
  tensors["scalar.f32"] = torch::tensor(3.25f);              // 0-d
  tensors["scalar.bf16"] = torch::tensor(-1.5f).to(torch::kBFloat16);
  tensors["transposed"] = torch::randn({3, 4}).t();           // not contiguous
  const Metadata metadata = {{"format", "pt"}, {"note", "a \"quoted\" value"}};
  write_safetensors(path, tensors, metadata);

  const auto contents = read_safetensors_file(path);
  EXPECT_EQ(contents.metadata, metadata);
  ASSERT_EQ(contents.tensors.size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    SCOPED_TRACE(name);
    const auto& got = contents.tensors.at(name);
    EXPECT_EQ(got.scalar_type(), expected.scalar_type());
    EXPECT_EQ(got.sizes(), expected.sizes());
    EXPECT_TRUE(torch::equal(got, expected));
  }
  EXPECT_EQ(contents.tensors.at("scalar.f32").dim(), 0);
  // The buffer starts 8-byte aligned, as the writer promises.
  const std::string bytes = read_bytes(path);
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ((8 + header_length) % 8, 0u);
}

// Bytes laid out by hand: the buffer order (c, a, b) differs from the name order, the header has
// metadata and trailing spaces, and values are spelled as their IEEE / two's complement bytes.
TEST(Safetensors, ReadsAFileWrittenByHand) {
  const std::string path = scratch_dir() + "/hand.safetensors";
  const std::string header =
      R"({"__metadata__":{"origin":"hand"},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
      R"("b":{"dtype":"BF16","shape":[],"data_offsets":[16,18]},)"
      R"("c":{"dtype":"I64","shape":[1,1],"data_offsets":[0,8]}}   )";
  std::string buffer;
  buffer += std::string("\xFD\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 8);  // c = -3 (int64)
  buffer += std::string("\x00\x00\x80\x3F", 4);                  // a[0] = 1.0f  (0x3F800000)
  buffer += std::string("\x00\x00\x20\xC0", 4);                  // a[1] = -2.5f (0xC0200000)
  buffer += std::string("\x00\x3F", 2);                          // b = 0.5 bf16 (0x3F00)
  write_bytes(path, u64_le(header.size()) + header + buffer);

  const auto contents = read_safetensors_file(path);
  EXPECT_EQ(contents.metadata.at("origin"), "hand");
  const auto& a = contents.tensors.at("a");
  const auto& b = contents.tensors.at("b");
  const auto& c = contents.tensors.at("c");
  EXPECT_EQ(a.scalar_type(), torch::kFloat32);
  EXPECT_EQ(a.sizes(), torch::IntArrayRef({2}));
  EXPECT_EQ(a[0].item<float>(), 1.0f);
  EXPECT_EQ(a[1].item<float>(), -2.5f);
  EXPECT_EQ(b.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(b.dim(), 0);
  EXPECT_EQ(b.to(torch::kFloat32).item<float>(), 0.5f);
  EXPECT_EQ(c.scalar_type(), torch::kInt64);
  EXPECT_EQ(c.sizes(), torch::IntArrayRef({1, 1}));
  EXPECT_EQ(c[0][0].item<int64_t>(), -3);
}

// The writer's exact bytes for a tiny tensor, spelled out independently of the writer.
TEST(Safetensors, WriterProducesTheSpecifiedBytes) {
  const std::string path = scratch_dir() + "/exact.safetensors";
  write_safetensors(path, {{"a", torch::tensor({1.0f, -2.5f})}});
  std::string header = R"({"a":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::string expected = u64_le(header.size()) + header + std::string("\x00\x00\x80\x3F\x00\x00\x20\xC0", 8);
  EXPECT_EQ(read_bytes(path), expected);
}

TEST(Safetensors, EmptyFileOfNoTensors) {
  const std::string path = scratch_dir() + "/empty.safetensors";
  write_safetensors(path, {});
  EXPECT_TRUE(read_safetensors(path).empty());
}

struct BadFile {
  const char* label;
  std::string bytes;
  const char* expected;  // a phrase the error must contain
};

TEST(Safetensors, EveryMalformedFileIsAClearError) {
  const std::string dir = scratch_dir();
  const std::string f32_8 = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<BadFile> cases = {
      {"truncated below 8 bytes", std::string("\x10\x00\x00", 3), "truncated: 3 bytes"},
      {"header longer than the file", u64_le(1000) + "{}", "header length 1000 is larger than the 2 bytes"},
      {"malformed JSON", file_with(R"({"a": {"dtype": )", 0), "malformed header JSON"},
      {"header not an object", file_with("[1, 2]", 0), "must be a JSON object"},
      {"entry not an object", file_with(R"({"a": 3})", 0), "at a: must be an object"},
      {"missing shape", file_with(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4), "is missing \"shape\""},
      {"unknown key", file_with(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", 4),
       "unknown key 'x'"},
      {"unknown dtype", file_with(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", 4),
       "unknown or unsupported dtype 'F33'; supported: BOOL"},
      {"negative dimension", file_with(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
       "non-negative integers"},
      {"offsets not a pair", file_with(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4),
       "must be [BEGIN, END]"},
      {"begin after end", file_with(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4),
       "BEGIN > END"},
      {"offsets past the buffer", file_with("{" + f32_8 + "}", 6), "runs past the end of the 6-byte data buffer"},
      {"offsets inconsistent with shape",
       file_with(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
       "spans 8 bytes, but shape [3] of F32 needs 12"},
      {"overlapping tensors",
       file_with("{" + f32_8 + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
       "overlap tensor 'a'"},
      {"a gap between tensors",
       file_with(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12),
       "leaving bytes [4, 8) of the buffer unused"},
      {"trailing bytes", file_with("{" + f32_8 + "}", 12), "trailing bytes"},
      {"duplicate name", file_with("{" + f32_8 + "," + f32_8 + "}", 8), "names this tensor twice"},
      {"metadata not strings", file_with(R"({"__metadata__":{"n":1}})", 0), "__metadata__.n: must be a string"},
  };
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.label);
    const std::string path = dir + "/bad.safetensors";
    write_bytes(path, bad.bytes);
    const std::string message = error_of([&] { read_safetensors(path); });
    ASSERT_FALSE(message.empty()) << "no error";
    EXPECT_CONTAINS(message, path);
    EXPECT_CONTAINS(message, bad.expected);
  }
  EXPECT_CONTAINS(error_of([&] { read_safetensors(dir + "/absent.safetensors"); }), "absent.safetensors: no such file");
}

TEST(Safetensors, WriterRejectsWhatTheFormatCannotHold) {
  const std::string path = scratch_dir() + "/w.safetensors";
  EXPECT_CONTAINS(error_of([&] { write_safetensors(path, {{"z", torch::zeros({2}, torch::kComplexFloat)}}); }),
                  "cannot be stored in safetensors");
  EXPECT_CONTAINS(error_of([&] { write_safetensors(path, {{"", torch::zeros({2})}}); }), "not a valid tensor name");
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

// A module with a parameter of its own, a child and a buffer.
struct TinyModule : torch::nn::Module {
  TinyModule() {
    linear = register_module("linear", torch::nn::Linear(4, 3));
    scale = register_parameter("scale", torch::randn({3}));
    counts = register_buffer("counts", torch::randint(0, 10, {2}, torch::kInt64));
  }
  torch::nn::Linear linear{nullptr};
  torch::Tensor scale, counts;
};

TEST(Safetensors, ModuleWeightsRoundTrip) {
  const std::string path = scratch_dir() + "/tiny.safetensors";
  torch::manual_seed(1);
  TinyModule source;
  save_module_weights(source, path, {{"origin", "test"}});
  EXPECT_EQ(read_safetensors_metadata(path).at("format"), "pt");
  const auto names = read_safetensors(path);
  for (const char* name : {"linear.weight", "linear.bias", "scale", "counts"}) EXPECT_TRUE(names.count(name)) << name;

  torch::manual_seed(2);
  TinyModule target;
  ASSERT_FALSE(torch::equal(target.scale, source.scale));
  const LoadReport report = load_module_weights(target, path);
  EXPECT_EQ(report.loaded.size(), 4u);
  EXPECT_TRUE(torch::equal(target.linear->weight, source.linear->weight));
  EXPECT_TRUE(torch::equal(target.linear->bias, source.linear->bias));
  EXPECT_TRUE(torch::equal(target.scale, source.scale));
  EXPECT_TRUE(torch::equal(target.counts, source.counts));
}

TEST(Safetensors, StrictLoadListsMissingAndUnexpectedNames) {
  const std::string path = scratch_dir() + "/renamed.safetensors";
  TinyModule module;
  TensorMap weights = module_weights(module);
  weights["scael"] = weights.at("scale");
  weights.erase("scale");
  weights.erase("linear.bias");
  write_safetensors(path, weights);

  const auto before = module.scale.clone();
  const std::string message = error_of([&] { load_module_weights(module, path); });
  EXPECT_CONTAINS(message, path);
  EXPECT_CONTAINS(message, "missing (in the module, not in the file): linear.bias, scale");
  EXPECT_CONTAINS(message, "unexpected (in the file, not in the module): scael");
  EXPECT_TRUE(torch::equal(module.scale, before));

  // Non-strict loads what matches and reports the rest.
  const LoadReport report = load_module_weights(module, path, /*strict=*/false);
  EXPECT_EQ(report.loaded, (std::vector<std::string>{"counts", "linear.weight"}));
  EXPECT_EQ(report.missing, (std::vector<std::string>{"linear.bias", "scale"}));
  EXPECT_EQ(report.unexpected, (std::vector<std::string>{"scael"}));
}

TEST(Safetensors, ShapeMismatchNamesTheTensorAndBothShapes) {
  const std::string path = scratch_dir() + "/shape.safetensors";
  TinyModule module;
  TensorMap weights = module_weights(module);
  weights["linear.weight"] = torch::zeros({3, 5});
  write_safetensors(path, weights);
  const auto before = module.scale.clone();
  const std::string message = error_of([&] { load_module_weights(module, path); });
  EXPECT_CONTAINS(message, "at linear.weight: shape mismatch: the module expects [3, 4], the file has [3, 5]");
  EXPECT_TRUE(torch::equal(module.scale, before)) << "a failed load must leave the module untouched";
}

TEST(Safetensors, DtypeRuleConvertsWithinAKindOnly) {
  const std::string dir = scratch_dir();
  TinyModule module;
  // BF16 into a float32 module: converted (exactly, since bf16 values are float32 values).
  TensorMap weights = module_weights(module);
  for (const char* name : {"linear.weight", "linear.bias", "scale"})
    weights[name] = torch::randn(weights.at(name).sizes()).to(torch::kBFloat16);
  weights["counts"] = torch::tensor({7, 9}, torch::kInt32);  // integer into int64: converted
  write_safetensors(dir + "/bf16.safetensors", weights);
  load_module_weights(module, dir + "/bf16.safetensors");
  EXPECT_EQ(module.scale.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(module.scale, weights.at("scale").to(torch::kFloat32)));
  EXPECT_EQ(module.counts.scalar_type(), torch::kInt64);
  EXPECT_EQ(module.counts[1].item<int64_t>(), 9);

  // An integer tensor into a floating-point parameter: refused.
  weights["scale"] = torch::ones({3}, torch::kInt64);
  write_safetensors(dir + "/int.safetensors", weights);
  EXPECT_CONTAINS(error_of([&] { load_module_weights(module, dir + "/int.safetensors"); }),
                  "at scale: dtype mismatch: the module holds Float (floating-point), the file I64 (integer)");
}

// Every registry entry's weights survive a save and a strict load into a differently seeded
// instance: the forward passes then agree exactly.
TEST(Safetensors, EveryRegistryEntryRoundTrips) {
  const std::string dir = scratch_dir();
  const MixerContext context{16, 2};
  torch::manual_seed(5);
  const auto x = torch::randn({2, 12, 16}, torch::kFloat64);
  for (const auto& name : Registry::global().names()) {
    SCOPED_TRACE(name);
    const std::string path = dir + "/" + name + ".safetensors";
    torch::manual_seed(1);
    auto source = Registry::global().create(name, context);
    source->to(torch::kFloat64);
    save_module_weights(*source, path);
    torch::manual_seed(2);
    auto target = Registry::global().create(name, context);
    target->to(torch::kFloat64);
    const LoadReport report = load_module_weights(*target, path);
    EXPECT_EQ(report.loaded.size(), module_weights(*source).size());
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(source->forward(x), target->forward(x)));
  }
}

// A whole model: the names documented in docs/weights.md, and a strict round trip.
TEST(Safetensors, LanguageModelRoundTripsUnderTheDocumentedNames) {
  const std::string path = scratch_dir() + "/model.safetensors";
  json spec = {{"preset", "scout-swa"}, {"vocab_size", 40}, {"d_model", 16}, {"n_heads", 2}, {"n_layers", 2},
               {"tie_embeddings", false}};
  const ModelConfig config = parse_model_config(spec, "test");
  torch::manual_seed(1);
  LanguageModel source(config);
  save_module_weights(*source, path);
  const auto names = read_safetensors(path);
  for (const char* name : {"embed_tokens.weight", "layers.0.norm.weight", "layers.0.swa.q_proj.weight",
                           "layers.1.mlp.gate_proj.weight", "layers.2.checkpoint_attention.o_proj.weight",
                           "layers.7.mlp.down_proj.weight", "norm.weight", "lm_head.weight"})
    EXPECT_TRUE(names.count(name)) << name;
  EXPECT_EQ(names.size(), module_weights(*source).size());

  torch::manual_seed(2);
  LanguageModel target(config);
  load_module_weights(*target, path);
  const auto tokens = torch::randint(0, 40, {2, 25}, torch::kInt64);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(source->forward(tokens), target->forward(tokens)));
}

}  // namespace
}  // namespace mixlab
