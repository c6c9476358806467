#pragma once
// Reading and writing weights in the safetensors format (huggingface/safetensors), with no
// Python involved.  The format, as this file reads and writes it:
//
//   bytes [0, 8)        N, the header length: an unsigned 64-bit little-endian integer
//   bytes [8, 8+N)      the header: a UTF-8 JSON object
//                         { NAME: {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]},
//                           ...,
//                           "__metadata__": {KEY: "string value", ...} }      (optional)
//   bytes [8+N, EOF)    the byte buffer: each tensor's elements, row-major, little-endian,
//                       at [8+N+BEGIN, 8+N+END)
//
// A valid file satisfies, and read_safetensors checks:
//   * END − BEGIN = numel(shape) · bytes(dtype)   (numel of the shape [] is 1: a 0-d tensor);
//   * tensors do not overlap, and together they cover the whole buffer with no gap or trailing
//     bytes (the rule of the reference implementation);
//   * the header is at most 100 MB, holds no duplicate names, and every entry has exactly the
//     keys dtype, shape and data_offsets.
//
// Every failure raises SafetensorsError: "FILE: at TENSOR: what is wrong", which the CLI reports
// as one line with exit status 2 (it is a ConfigError).

#include "harness/config.h"

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace mixlab {

// A malformed or unreadable safetensors file, or weights that do not fit a module.
class SafetensorsError : public ConfigError {
 public:
  SafetensorsError(const std::string& file, const std::string& tensor, const std::string& message)
      : ConfigError(file, tensor, message) {}
};

using TensorMap = std::map<std::string, torch::Tensor>;
using Metadata = std::map<std::string, std::string>;

struct SafetensorsContents {
  TensorMap tensors;   // on the CPU, in the dtype stored in the file
  Metadata metadata;   // the "__metadata__" object (empty when absent)
};

// The safetensors dtype name of a LibTorch scalar type ("F32", "BF16", ...) and back.
// Supported: BOOL, U8, I8, I16, I32, I64, F16, BF16, F32, F64.
std::string safetensors_dtype_name(torch::ScalarType type);
std::vector<std::string> safetensors_dtype_names();

SafetensorsContents read_safetensors_file(const std::string& path);
TensorMap read_safetensors(const std::string& path);
Metadata read_safetensors_metadata(const std::string& path);

// Writes every tensor (copied to the CPU and made contiguous; each must be dense and of a
// supported dtype) in name order; the header is padded with spaces to a multiple of 8 bytes so
// that the buffer is aligned.  The file is written to PATH.tmp and renamed, so a failed write
// never leaves a half-written PATH behind.
void write_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});

// The weights of a module: its parameters and buffers under their dotted names
// ("q_proj.weight", "layers.3.mlp.up_proj.weight").
TensorMap module_weights(const torch::nn::Module& module);

// What load_module_weights did.
struct LoadReport {
  std::vector<std::string> loaded;      // names copied into the module
  std::vector<std::string> missing;     // in the module, not in the file
  std::vector<std::string> unexpected;  // in the file, not in the module
};

// Copy the tensors of a safetensors file into a module's parameters and buffers, by name.
//
//   strict = true:  the file's names must equal the module's; otherwise the error lists the
//                   missing and the unexpected names.
//   strict = false: names present on both sides are loaded; the rest is reported.
//
// A shape mismatch is always an error (name, the module's shape, the file's shape).
// dtype rule: the stored values are converted to the module's dtype (and device) within the
// same kind (floating point to floating point, e.g. a BF16 file into a float32 model; integer to
// integer; bool to bool).  Converting across kinds (an integer tensor into a floating-point
// parameter, or the reverse) is an error, because it is never what a checkpoint meant.
LoadReport load_module_weights(torch::nn::Module& module, const std::string& path, bool strict = true);
// The same rules for tensors already in memory; `path` names their source in errors.
LoadReport load_module_tensors(torch::nn::Module& module, const TensorMap& stored, const std::string& path,
                               bool strict = true);

// Write a module's parameters and buffers (module_weights) with metadata; "format": "pt" is
// added unless given, as the Python writer does.
void save_module_weights(const torch::nn::Module& module, const std::string& path,
                         const Metadata& metadata = {});

}  // namespace mixlab
