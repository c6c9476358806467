// Escaping, file-name sanitising, base64 and number formatting for report outputs.

#include "reports/text.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

namespace mixlab::reports {

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string latex_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '\\': out += "\\textbackslash{}"; break;
      case '{': case '}': case '_': case '&': case '%': case '$': case '#': out += '\\'; out += c; break;
      case '^': out += "\\textasciicircum{}"; break;
      case '~': out += "\\textasciitilde{}"; break;
      default: out += c;
    }
  }
  return out;
}

std::string markdown_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|' || c == '*' || c == '_' || c == '`' || c == '<' || c == '>' || c == '[' || c == ']' || c == '\\') out += '\\';
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';  // no control characters in a document
    out += c;
  }
  return out;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string gnuplot_quote(const std::string& text) {
  // A double-quoted gnuplot string with every backslash and quote escaped.  (Single quotes with
  // '' for a quote fail on a text that starts with a quote: gnuplot reads the leading '' as an
  // empty string.)  Newlines would end the command; other control characters are dropped.
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (c == '\n' || c == '\r' || c == '\t') out += ' ';
    else if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
  }
  return out + "\"";
}

std::string printable_line(const std::string& text) {
  // C0 controls (ESC starts a terminal escape sequence), DEL, and the C1 controls U+0080..U+009F
  // (UTF-8 C2 80..C2 9F; U+009B is a one-character CSI) become '?'; newlines and tabs a space.
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = text[i];
    if (c == '\n' || c == '\r' || c == '\t') out += ' ';
    else if (c < 0x20 || c == 0x7f) out += '?';
    else if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
             static_cast<unsigned char>(text[i + 1]) <= 0x9f) out += '?', ++i;
    else out += static_cast<char>(c);
  }
  return out;
}

std::string sanitize_filename(const std::string& name) {
  std::string out;
  for (char c : name) {
    const bool keep = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    if (keep) out += c;
    else if (out.empty() || out.back() != '_') out += '_';
  }
  while (!out.empty() && out.front() == '.') out.erase(out.begin());
  if (out.size() > 80) out.resize(80);
  if (out.empty() || out == "_") out = "unnamed";
  return out;
}

std::string base64_encode(const std::string& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string format_number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  const double magnitude = std::fabs(value);
  if (magnitude != 0 && (magnitude >= 1e6 || magnitude < 1e-3)) {
    std::snprintf(buffer, sizeof buffer, "%.2e", value);
  } else if (magnitude >= 100 || magnitude == 0) {
    std::snprintf(buffer, sizeof buffer, "%.0f", value);
  } else {
    // 3 significant digits below 100: 12.3, 1.23, 0.123, 0.0123
    const int decimals = 2 - static_cast<int>(std::floor(std::log10(magnitude)));
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  }
  return buffer;
}

std::string format_length(double n) {
  char buffer[64];
  const double rounded = std::round(n);
  const bool power_of_two = rounded >= 1024 && std::fabs(n - rounded) < 1e-9 &&
                            (static_cast<long long>(rounded) & (static_cast<long long>(rounded) - 1)) == 0;
  if (power_of_two) {
    const double k = rounded / 1024;
    if (k >= 1024) std::snprintf(buffer, sizeof buffer, "%gM", k / 1024);
    else std::snprintf(buffer, sizeof buffer, "%gk", k);
  } else if (n >= 1e6) {
    std::snprintf(buffer, sizeof buffer, "%.2gM", n / 1e6);
  } else if (n >= 1e4) {
    std::snprintf(buffer, sizeof buffer, "%.0fk", n / 1e3);
  } else if (n >= 1e3) {
    std::snprintf(buffer, sizeof buffer, "%.1fk", n / 1e3);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.0f", n);
  }
  return buffer;
}

std::string lowercase_first(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

std::string fixed_decimals(double value, int decimals) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(decimals) << value;
  return s.str();
}

std::string significant_digits(double value, int digits) {
  std::ostringstream s;
  s << std::setprecision(digits) << value;
  return s.str();
}

std::string compact_number(double value) {
  const char* suffix = "";
  double v = value;
  if (std::fabs(v) >= 1e15) v /= 1e15, suffix = "P";
  else if (std::fabs(v) >= 1e12) v /= 1e12, suffix = "T";
  else if (std::fabs(v) >= 1e9) v /= 1e9, suffix = "G";
  else if (std::fabs(v) >= 1e6) v /= 1e6, suffix = "M";
  else if (std::fabs(v) >= 1e4) v /= 1e3, suffix = "k";
  return significant_digits(v, 3) + suffix;
}

size_t display_width(const std::string& text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

}  // namespace mixlab::reports
