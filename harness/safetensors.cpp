// safetensors reading and writing; the format and the checks are described in safetensors.h.

#include "harness/safetensors.h"

#include "core/text.h"

#include "harness/json_input.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace mixlab {

namespace fs = std::filesystem;

namespace {

// The reference implementation refuses headers above 100 MB; so do we, before allocating.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
};

// The safetensors dtypes that LibTorch 1.13 can hold.  (U16, U32, U64 and the F8 types are valid
// safetensors dtypes without a LibTorch 1.13 scalar type; they are reported as unsupported.)
const std::vector<DtypeInfo>& dtype_table() {
  static const std::vector<DtypeInfo> table = {
      {"BOOL", torch::kBool},    {"U8", torch::kUInt8},     {"I8", torch::kInt8},
      {"I16", torch::kInt16},    {"I32", torch::kInt32},    {"I64", torch::kInt64},
      {"F16", torch::kFloat16},  {"BF16", torch::kBFloat16}, {"F32", torch::kFloat32},
      {"F64", torch::kFloat64},
  };
  return table;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

void require_little_endian_host(const std::string& path) {
  const uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  if (first != 1)
    throw SafetensorsError(path, "", "this host is big-endian; safetensors data is little-endian and "
                                     "mixlab does not byte-swap");
}

// One entry of the header, checked against the buffer.
struct HeaderEntry {
  std::string name;
  torch::ScalarType type;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

uint64_t read_u64_le(const unsigned char* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

void write_u64_le(std::ostream& out, uint64_t value) {
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>((value >> (8 * i)) & 0xff);
  out.write(reinterpret_cast<const char*>(bytes), 8);
}

// Parse the header text; duplicate top-level names are an error (a JSON parser keeps the last).
json parse_header(const std::string& text, const std::string& path) {
  std::set<std::string> seen;
  std::string duplicate;
  auto find_duplicates = [&](const std::string& name) {
    if (!seen.insert(name).second && duplicate.empty()) duplicate = name;
  };
  json header;
  try {
    header = parse_json_bounded(text, /*allow_comments=*/false, find_duplicates);
  } catch (const JsonInputError& error) {
    const std::string detail = error.syntax ? "malformed header JSON" + error.detail.substr(std::string("malformed JSON").size())
                                            : "header: " + error.detail;
    throw SafetensorsError(path, error.where, detail);
  }
  if (!header.is_object())
    throw SafetensorsError(path, "", "the header must be a JSON object, got " + std::string(header.type_name()));
  if (!duplicate.empty()) throw SafetensorsError(path, duplicate, "the header names this tensor twice");
  return header;
}

bool is_non_negative_integer(const json& value) {
  return value.is_number_unsigned() || (value.is_number_integer() && value.get<int64_t>() >= 0);
}

HeaderEntry parse_entry(const std::string& path, const std::string& name, const json& item,
                        uint64_t buffer_bytes) {
  if (name.empty()) throw SafetensorsError(path, "\"\"", "a tensor name must not be empty");
  if (!item.is_object())
    throw SafetensorsError(path, name, "must be an object {\"dtype\", \"shape\", \"data_offsets\"}, got " +
                                           item.dump());
  for (auto it = item.begin(); it != item.end(); ++it)
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets")
      throw SafetensorsError(path, name, "unknown key '" + it.key() + "'; valid: dtype, shape, data_offsets");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!item.contains(key)) throw SafetensorsError(path, name, std::string("is missing \"") + key + "\"");

  HeaderEntry entry;
  entry.name = name;
  if (!item["dtype"].is_string())
    throw SafetensorsError(path, name + ".dtype", "must be a string, got " + item["dtype"].dump());
  const auto dtype = item["dtype"].get<std::string>();
  const auto& table = dtype_table();
  auto found = std::find_if(table.begin(), table.end(), [&](const DtypeInfo& d) { return dtype == d.name; });
  if (found == table.end())
    throw SafetensorsError(path, name + ".dtype", "unknown or unsupported dtype '" + dtype +
                                                      "'; supported: " + joined(safetensors_dtype_names()));
  entry.type = found->type;

  const json& shape = item["shape"];
  if (!shape.is_array())
    throw SafetensorsError(path, name + ".shape", "must be a list of non-negative integers, got " + shape.dump());
  uint64_t numel = 1;
  bool overflow = false;
  for (const auto& dim : shape) {
    if (!is_non_negative_integer(dim) || dim.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      throw SafetensorsError(path, name + ".shape", "must be a list of non-negative integers, got " + shape.dump());
    entry.shape.push_back(dim.get<int64_t>());
    overflow = overflow || __builtin_mul_overflow(numel, dim.get<uint64_t>(), &numel);
  }
  const uint64_t element_bytes = c10::elementSize(entry.type);
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, element_bytes, &nbytes);

  const json& offsets = item["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !is_non_negative_integer(offsets[0]) ||
      !is_non_negative_integer(offsets[1]))
    throw SafetensorsError(path, name + ".data_offsets",
                           "must be [BEGIN, END], two non-negative integers, got " + offsets.dump());
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  const std::string span = "[" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) + "]";
  if (entry.begin > entry.end)
    throw SafetensorsError(path, name + ".data_offsets", span + " has BEGIN > END");
  if (entry.end > buffer_bytes)
    throw SafetensorsError(path, name + ".data_offsets", span + " runs past the end of the " +
                                                             std::to_string(buffer_bytes) + "-byte data buffer "
                                                             "(file truncated?)");
  if (overflow || nbytes != entry.end - entry.begin)
    throw SafetensorsError(path, name + ".data_offsets",
                           span + " spans " + std::to_string(entry.end - entry.begin) + " bytes, but shape " +
                               shape_text(entry.shape) + " of " + dtype + " needs " +
                               (overflow ? std::string("more than 2^64") : std::to_string(nbytes)));
  return entry;
}

// Tensors must not overlap and must cover the buffer exactly (no gaps, no trailing bytes).
void check_layout(const std::string& path, std::vector<HeaderEntry>& entries, uint64_t buffer_bytes) {
  std::sort(entries.begin(), entries.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;  // end of the bytes claimed so far
  const HeaderEntry* previous = nullptr;
  for (const auto& entry : entries) {
    if (entry.begin < covered)
      throw SafetensorsError(path, entry.name, "data_offsets [" + std::to_string(entry.begin) + ", " +
                                                   std::to_string(entry.end) + "] overlap tensor '" +
                                                   previous->name + "' at [" + std::to_string(previous->begin) +
                                                   ", " + std::to_string(previous->end) + "]");
    if (entry.begin > covered)
      throw SafetensorsError(path, entry.name, "data_offsets begin at " + std::to_string(entry.begin) +
                                                   ", leaving bytes [" + std::to_string(covered) + ", " +
                                                   std::to_string(entry.begin) + ") of the buffer unused");
    covered = entry.end;
    previous = &entry;
  }
  if (covered != buffer_bytes)
    throw SafetensorsError(path, "", "the data buffer has " + std::to_string(buffer_bytes) +
                                         " bytes but the tensors cover only " + std::to_string(covered) +
                                         " (trailing bytes)");
}

}  // namespace

std::string safetensors_dtype_name(torch::ScalarType type) {
  for (const auto& d : dtype_table())
    if (d.type == type) return d.name;
  throw std::invalid_argument(std::string("dtype ") + c10::toString(type) +
                              " cannot be stored in safetensors; supported: " + joined(safetensors_dtype_names()));
}

std::vector<std::string> safetensors_dtype_names() {
  std::vector<std::string> names;
  for (const auto& d : dtype_table()) names.push_back(d.name);
  return names;
}

SafetensorsContents read_safetensors_file(const std::string& path) {
  require_little_endian_host(path);
  std::error_code error;
  if (!fs::exists(path, error)) throw SafetensorsError(path, "", "no such file");
  if (!fs::is_regular_file(path, error)) throw SafetensorsError(path, "", "not a regular file");
  const uint64_t file_bytes = fs::file_size(path, error);
  std::ifstream in(path, std::ios::binary);
  if (!in || error) throw SafetensorsError(path, "", "cannot open the file");

  if (file_bytes < 8)
    throw SafetensorsError(path, "", "truncated: " + std::to_string(file_bytes) +
                                         " bytes, fewer than the 8-byte header length");
  unsigned char length_bytes[8];
  in.read(reinterpret_cast<char*>(length_bytes), 8);
  const uint64_t header_bytes = read_u64_le(length_bytes);
  if (header_bytes > file_bytes - 8)
    throw SafetensorsError(path, "", "header length " + std::to_string(header_bytes) + " is larger than the " +
                                         std::to_string(file_bytes - 8) + " bytes that follow it (truncated, "
                                         "or not a safetensors file)");
  if (header_bytes > kMaxHeaderBytes)
    throw SafetensorsError(path, "", "header length " + std::to_string(header_bytes) +
                                         " exceeds the 100 MB limit of the format");
  if (header_bytes < 2) throw SafetensorsError(path, "", "header length " + std::to_string(header_bytes) +
                                                             " is too short for a JSON object");
  std::string header_text(header_bytes, '\0');
  in.read(header_text.data(), static_cast<std::streamsize>(header_bytes));
  if (!in) throw SafetensorsError(path, "", "could not read the header");
  const uint64_t buffer_bytes = file_bytes - 8 - header_bytes;

  const json header = parse_header(header_text, path);
  SafetensorsContents contents;
  std::vector<HeaderEntry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object())
        throw SafetensorsError(path, "__metadata__", "must be an object of strings, got " + it.value().dump());
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string())
          throw SafetensorsError(path, "__metadata__." + m.key(), "must be a string, got " + m.value().dump());
        contents.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, it.key(), it.value(), buffer_bytes));
  }
  check_layout(path, entries, buffer_bytes);

  // Read each tensor straight into its own storage, in file order.
  const uint64_t data_start = 8 + header_bytes;
  for (const auto& entry : entries) {
    auto tensor = torch::empty(entry.shape, torch::TensorOptions().dtype(entry.type));
    const uint64_t nbytes = entry.end - entry.begin;
    if (nbytes > 0) {
      in.seekg(static_cast<std::streamoff>(data_start + entry.begin));
      in.read(static_cast<char*>(tensor.data_ptr()), static_cast<std::streamsize>(nbytes));
      if (!in) throw SafetensorsError(path, entry.name, "could not read the tensor's bytes");
    }
    contents.tensors.emplace(entry.name, std::move(tensor));
  }
  return contents;
}

TensorMap read_safetensors(const std::string& path) { return read_safetensors_file(path).tensors; }

Metadata read_safetensors_metadata(const std::string& path) { return read_safetensors_file(path).metadata; }

void write_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  require_little_endian_host(path);
  // The header, with each tensor's place in the buffer, in name order.
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> ordered;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__")
      throw SafetensorsError(path, name, "is not a valid tensor name");
    if (!tensor.defined()) throw SafetensorsError(path, name, "the tensor is undefined");
    if (tensor.layout() != torch::kStrided)
      throw SafetensorsError(path, name, "only dense tensors can be written");
    std::string dtype;
    try {
      dtype = safetensors_dtype_name(tensor.scalar_type());
    } catch (const std::invalid_argument& error) {
      throw SafetensorsError(path, name, error.what());
    }
    auto data = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(data.numel()) * data.element_size();
    header[name] = {{"dtype", dtype}, {"shape", data.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    ordered.push_back(std::move(data));
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // align the buffer to 8 bytes

  const std::string temporary = path + ".tmp";
  {
    errno = 0;  // so that a failed write below names its own cause (ENOSPC on a full disk)
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) throw SafetensorsError(path, "", "cannot open " + temporary + " for writing");
    write_u64_le(out, header_text.size());
    out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
    for (const auto& data : ordered)
      out.write(static_cast<const char*>(data.data_ptr()),
                static_cast<std::streamsize>(data.numel() * data.element_size()));
    out.flush();
    if (!out) {
      const std::string cause = errno != 0 ? std::strerror(errno) : "disk full?";
      std::remove(temporary.c_str());
      throw SafetensorsError(path, "", "writing " + temporary + " failed (" + cause + ")");
    }
  }
  std::error_code error;
  fs::rename(temporary, path, error);
  if (error) {
    std::remove(temporary.c_str());
    throw SafetensorsError(path, "", "cannot rename " + temporary + ": " + error.message());
  }
}

TensorMap module_weights(const torch::nn::Module& module) {
  TensorMap weights;
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    if (item.value().defined()) weights[item.key()] = item.value();
  for (const auto& item : module.named_buffers(/*recurse=*/true))
    if (item.value().defined()) weights[item.key()] = item.value();
  return weights;
}

namespace {
enum class Kind { Boolean, Integer, Floating, Complex };
Kind kind_of(torch::ScalarType type) {
  if (type == torch::kBool) return Kind::Boolean;
  if (c10::isComplexType(type)) return Kind::Complex;
  if (c10::isFloatingType(type)) return Kind::Floating;
  return Kind::Integer;
}
const char* to_string(Kind kind) {
  switch (kind) {
    case Kind::Boolean: return "bool";
    case Kind::Integer: return "integer";
    case Kind::Floating: return "floating-point";
    case Kind::Complex: return "complex";
  }
  return "?";
}
}  // namespace

LoadReport load_module_weights(torch::nn::Module& module, const std::string& path, bool strict) {
  return load_module_tensors(module, read_safetensors(path), path, strict);
}

LoadReport load_module_tensors(torch::nn::Module& module, const TensorMap& stored, const std::string& path,
                               bool strict) {
  const TensorMap targets = module_weights(module);
  LoadReport report;
  for (const auto& [name, target] : targets)
    if (!stored.count(name)) report.missing.push_back(name);
  for (const auto& [name, tensor] : stored)
    if (!targets.count(name)) report.unexpected.push_back(name);
  if (strict && (!report.missing.empty() || !report.unexpected.empty())) {
    std::string message = "the weights do not match the module:";
    if (!report.missing.empty())
      message += " missing (in the module, not in the file): " + joined_at_most(report.missing, 20) + ";";
    if (!report.unexpected.empty())
      message += " unexpected (in the file, not in the module): " + joined_at_most(report.unexpected, 20) + ";";
    message.pop_back();
    throw SafetensorsError(path, "", message);
  }
  // Check everything before copying anything, so that a failed load leaves the module as it was.
  for (const auto& [name, target] : targets) {
    auto found = stored.find(name);
    if (found == stored.end()) continue;
    const auto& source = found->second;
    if (source.sizes() != target.sizes())
      throw SafetensorsError(path, name, "shape mismatch: the module expects " + shape_text(target.sizes().vec()) +
                                             ", the file has " + shape_text(source.sizes().vec()));
    const Kind want = kind_of(target.scalar_type()), have = kind_of(source.scalar_type());
    if (want != have)
      throw SafetensorsError(path, name, std::string("dtype mismatch: the module holds ") +
                                             c10::toString(target.scalar_type()) + " (" + to_string(want) +
                                             "), the file " + safetensors_dtype_name(source.scalar_type()) + " (" +
                                             to_string(have) + "); only conversions within one kind are done");
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, target] : targets) {
    auto found = stored.find(name);
    if (found == stored.end()) continue;
    auto destination = target;  // shares storage with the module's tensor
    destination.copy_(found->second);
    report.loaded.push_back(name);
  }
  return report;
}

void save_module_weights(const torch::nn::Module& module, const std::string& path, const Metadata& metadata) {
  Metadata with_format = metadata;
  with_format.emplace("format", "pt");
  write_safetensors(path, module_weights(module), with_format);
}

}  // namespace mixlab
