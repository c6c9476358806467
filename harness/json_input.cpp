#include "harness/json_input.h"

#include <vector>

namespace mixlab {

using json = nlohmann::json;

namespace {

// Where the parser is, as a JSON path: one frame per open object or array.  An array frame
// counts the elements that have ended, which is the index of the element being read.
struct PathTracker {
  struct Frame {
    bool array = false;
    std::string key;    // objects: the member being read
    size_t ended = 0;   // arrays: elements finished so far
  };
  std::vector<Frame> frames;

  void element_ended() {
    if (!frames.empty() && frames.back().array) ++frames.back().ended;
  }
  // The path, shortened in the middle past 12 levels ("a.b[0][0]...[0].c").
  std::string path() const {
    std::string out;
    for (size_t i = 0; i < frames.size(); ++i) {
      if (frames.size() > 12 && i == 6) out += "...";
      if (frames.size() > 12 && i >= 6 && i + 6 < frames.size()) continue;
      const Frame& frame = frames[i];
      if (frame.array) out += "[" + std::to_string(frame.ended) + "]";
      else if (!frame.key.empty()) out += (out.empty() ? "" : ".") + frame.key;
    }
    return out;
  }
};

// "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error ..." -> the
// part from "syntax error" (or the whole text without the bracketed prefix).
std::string without_prefix(const std::string& message) {
  const auto syntax = message.find("syntax error");
  if (syntax != std::string::npos) return message.substr(syntax);
  const auto bracket = message.find("] ");
  return bracket == std::string::npos ? message : message.substr(bracket + 2);
}

}  // namespace

json parse_json_bounded(const std::string& text, bool allow_comments, const TopLevelKeyHook& on_top_level_key) {
  PathTracker tracker;
  json::parser_callback_t callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth)
          throw JsonInputError(tracker.path(), "nested more than " + std::to_string(kMaxJsonDepth) +
                                                   " levels deep; mixlab reads no JSON this deep", false);
        tracker.frames.push_back({event == json::parse_event_t::array_start, "", 0});
        break;
      case json::parse_event_t::key:
        if (!tracker.frames.empty()) tracker.frames.back().key = parsed.is_string() ? parsed.get<std::string>() : "";
        if (depth == 1 && on_top_level_key && parsed.is_string()) on_top_level_key(parsed.get<std::string>());
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!tracker.frames.empty()) tracker.frames.pop_back();
        tracker.element_ended();
        break;
      case json::parse_event_t::value:
        tracker.element_ended();
        break;
    }
    return true;
  };
  try {
    return json::parse(text, callback, /*allow_exceptions=*/true, allow_comments);
  } catch (const json::parse_error& error) {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < text.size() && i + 1 < error.byte; ++i) {
      if (text[i] == '\n') { ++line; column = 1; } else { ++column; }
    }
    throw JsonInputError("", "malformed JSON at line " + std::to_string(line) + ", column " +
                                 std::to_string(column) + ": " + without_prefix(error.what()), true);
  } catch (const json::exception& error) {
    // out_of_range.406: a number that does not fit a double, e.g. 1e400.
    throw JsonInputError(tracker.path(), without_prefix(error.what()) + " (numbers must fit a double)", false);
  }
}

bool is_valid_utf8(const std::string& text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    size_t length = 0;
    uint32_t code = 0, minimum = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xe0) == 0xc0) { length = 2; code = c & 0x1f; minimum = 0x80; }
    else if ((c & 0xf0) == 0xe0) { length = 3; code = c & 0x0f; minimum = 0x800; }
    else if ((c & 0xf8) == 0xf0) { length = 4; code = c & 0x07; minimum = 0x10000; }
    else return false;
    if (i + length > n) return false;
    for (size_t k = 1; k < length; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      code = (code << 6) | (s[i + k] & 0x3f);
    }
    if (code < minimum || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return false;
    i += length;
  }
  return true;
}

bool checked_multiply(int64_t a, int64_t b, int64_t& product) {
  return !__builtin_mul_overflow(a, b, &product);
}

}  // namespace mixlab
