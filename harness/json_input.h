#pragma once
// Reading JSON that a user or a file gave us, without letting any input crash mixlab.
//
// nlohmann::json parses iteratively, but dump(), comparisons and our own recursive walks recurse
// once per nesting level, so a document nested 100k levels deep overflows the stack later.  Every
// JSON that mixlab reads (specs, presets, --set values, safetensors headers) is therefore parsed
// here, with
//   * a nesting limit (kMaxJsonDepth levels; real specs use fewer than 10),
//   * numbers that must fit a double (1e400 is an error, not an exception from deep inside),
//   * strings that must be valid UTF-8 (checked by the parser; see is_valid_utf8 for raw text),
// and every failure is a JsonInputError that carries the JSON path where it happened.
//
// This file does not depend on LibTorch, so the fuzz targets (tests/fuzz/) link it directly.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

namespace mixlab {

constexpr int kMaxJsonDepth = 64;

// A rejected JSON text.  `where` is "line L, column C" for a syntax error, or the JSON path
// ("base.measure.repeats") of an out-of-range number or a too-deep value.
class JsonInputError : public std::runtime_error {
 public:
  JsonInputError(std::string where_, std::string detail_, bool syntax_)
      : std::runtime_error(where_.empty() ? detail_ : "at " + where_ + ": " + detail_),
        where(std::move(where_)), detail(std::move(detail_)), syntax(syntax_) {}
  std::string where, detail;
  bool syntax;  // the text is not JSON at all (as opposed to JSON beyond a limit)
};

// Called for every object key at nesting depth 1 (the top level), e.g. to find duplicate names.
using TopLevelKeyHook = std::function<void(const std::string& key)>;

// Parse `text` under the limits above; `allow_comments` accepts // and /* */ comments.
nlohmann::json parse_json_bounded(const std::string& text, bool allow_comments,
                                  const TopLevelKeyHook& on_top_level_key = {});

// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(const std::string& text);

// a * b for non-negative sizes, or nothing on overflow of int64.
bool checked_multiply(int64_t a, int64_t b, int64_t& product);

}  // namespace mixlab
