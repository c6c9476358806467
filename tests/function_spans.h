#pragma once
// Where the functions of a C++ source file start and end, found from its braces: enough for
// tests/test_function_length.cpp to list the functions longer than a limit.
//
// A brace opens a *scope* (namespace, class, struct, union, enum, extern "C"), a *function*
// (at scope level, after a header with a ')' — a definition, a TEST(...), a lambda at namespace
// scope) or something else (an initialiser, a statement).  Braces inside a function belong to it,
// lambdas included.  Comments, string, character and raw-string literals and preprocessor lines
// are blanked first, so that a brace inside them does not count.  A function's span runs from the
// first line of its header to the line of its closing brace.

#include <cctype>
#include <regex>
#include <string>
#include <vector>

namespace mixlab::testing {

struct FunctionSpan {
  int first_line = 0;     // 1-based: where the header starts
  int lines = 0;          // first_line .. closing brace, inclusive
  std::string signature;  // the header, white space folded (literals blanked)
};

// `source` with comments, literals and preprocessor lines replaced by blanks, newlines kept.
inline std::string code_only(const std::string& source) {
  std::string out;
  const size_t n = source.size();
  auto blank_until = [&](size_t from, size_t to) {  // keep the newlines of [from, to)
    for (size_t i = from; i < to && i < n; ++i) out += source[i] == '\n' ? '\n' : ' ';
  };
  bool line_start = true;
  for (size_t i = 0; i < n;) {
    const char c = source[i];
    if (line_start && c == '#') {  // a preprocessor line, with its continuation lines
      size_t end = i;
      while (end < n && !(source[end] == '\n' && source[end - 1] != '\\')) ++end;
      blank_until(i, end);
      i = end;
      continue;
    }
    if (c == '\n') line_start = true;
    else if (c != ' ' && c != '\t') line_start = false;
    if (source.compare(i, 2, "//") == 0) {
      const size_t end = source.find('\n', i);
      blank_until(i, end == std::string::npos ? n : end);
      i = end == std::string::npos ? n : end;
    } else if (source.compare(i, 2, "/*") == 0) {
      const size_t end = source.find("*/", i + 2);
      const size_t stop = end == std::string::npos ? n : end + 2;
      blank_until(i, stop);
      i = stop;
    } else if (c == 'R' && source.compare(i + 1, 1, "\"") == 0 && source.find('(', i) != std::string::npos &&
               (i == 0 || !(std::isalnum(static_cast<unsigned char>(source[i - 1])) || source[i - 1] == '_'))) {
      const size_t open = source.find('(', i + 2);  // R"delimiter( ... )delimiter"
      const std::string close = ")" + source.substr(i + 2, open - i - 2) + "\"";
      const size_t end = source.find(close, open);
      const size_t stop = end == std::string::npos ? n : end + close.size();
      blank_until(i, stop);
      i = stop;
    } else if (c == '"' || (c == '\'' && !(i > 0 && std::isxdigit(static_cast<unsigned char>(source[i - 1]))))) {
      size_t j = i + 1;  // a string or character literal (a ' after a digit is a digit separator)
      while (j < n && source[j] != c) j += source[j] == '\\' ? 2 : 1;
      blank_until(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

// The functions of `source`, in the order they close.
inline std::vector<FunctionSpan> function_spans(const std::string& source) {
  enum class Kind { Scope, Function, MemberInit, Other };
  struct Open { Kind kind; int first_line; std::string header; };
  static const std::regex scope_keyword(R"(\b(namespace|class|struct|union|enum)\b[^(]*$|^extern\b)");
  static const std::regex member_init(R"(\)\s*:[^:].*[\w>]$)");
  static const std::regex access_label(R"(^(public|private|protected)\s*:$)");
  static const std::regex specifier_end(R"(\b(const|override|noexcept|final|mutable)$)");
  const std::string code = code_only(source);
  std::vector<Open> open;
  std::vector<FunctionSpan> spans;
  std::string header;  // since the last ';', '{' or '}', white space folded
  int line = 1, header_line = 0;
  auto at_scope_level = [&] {
    for (const auto& o : open)
      if (o.kind != Kind::Scope) return false;
    return true;
  };
  for (char c : code) {
    if (c == '{') {
      while (!header.empty() && header.back() == ' ') header.pop_back();
      Kind kind = Kind::Other;
      if (at_scope_level()) {
        if (std::regex_search(header, scope_keyword)) kind = Kind::Scope;
        else if (std::regex_search(header, member_init) && !std::regex_search(header, specifier_end))
          kind = Kind::MemberInit;  // Type::Type(...) : member_{...}
        else if (header.find(')') != std::string::npos && header.back() != '=')
          kind = Kind::Function;
      }
      open.push_back({kind, header_line ? header_line : line, header});
      header.clear();
      header_line = 0;
    } else if (c == '}' && !open.empty()) {
      const Open closed = open.back();
      open.pop_back();
      if (closed.kind == Kind::MemberInit) {  // the constructor's header goes on
        header = closed.header + "{}";
        header_line = closed.first_line;
        continue;
      }
      if (closed.kind == Kind::Function) spans.push_back({closed.first_line, line - closed.first_line + 1, closed.header});
      header.clear();
      header_line = 0;
    } else if (c == ';') {
      header.clear();
      header_line = 0;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (!header.empty() && header.back() != ' ') header += ' ';
    } else {
      if (header_line == 0) header_line = line;
      header += c;
      if (c == ':' && std::regex_search(header, access_label)) {  // "public:" starts no header
        header.clear();
        header_line = 0;
      }
    }
    if (c == '\n') ++line;
  }
  return spans;
}

}  // namespace mixlab::testing
