#pragma once
// Text for the outputs of a report: escaping for HTML, LaTeX, Markdown and CSV, file names made
// safe from labels, base64 for images embedded in index.html, and number formatting.

#include <string>

namespace mixlab::reports {

std::string html_escape(const std::string& text);      // & < > " '
std::string latex_escape(const std::string& text);     // \ { } _ & % $ # ^ ~
std::string markdown_escape(const std::string& text);  // | and leading/trailing markup characters
std::string csv_field(const std::string& text);        // RFC 4180: quoted when it holds , " or a newline
std::string printable_line(const std::string& text);  // one line, no control characters (no terminal escapes)
std::string gnuplot_quote(const std::string& text);    // a double-quoted gnuplot string literal, \ and " escaped

// A name from a spec as a file name: [A-Za-z0-9._-] kept, runs of anything else become one '_',
// no leading dot, at most 80 characters, never empty.  "scout-swa S=64/../x" -> "scout-swa_S_64_.._x".
std::string sanitize_filename(const std::string& name);

std::string base64_encode(const std::string& bytes);

std::string lowercase_first(std::string text);  // "Forward latency" -> "forward latency"

// 3 significant digits: 0.0123, 1.23, 123, 12300 → "1.23e+04" only beyond 1e6 or below 1e-3.
std::string format_number(double value);
// For terminal tables (`mixlab show`): `decimals` digits after the point ("3.250"); `digits`
// significant digits ("1.28e+05", "64"); 3 significant digits with k (from 1e4), M, G, T, P
// ("12.3k", "2.1G").
std::string fixed_decimals(double value, int decimals);
std::string significant_digits(double value, int digits);
std::string compact_number(double value);
// Characters on a terminal: UTF-8 continuation bytes (10xxxxxx) take no column ("·", "²").
size_t display_width(const std::string& text);
// A sequence length: 512, 1k, 4k, 3.1k (k = 1000 for interpolated values, 1024 for powers of two).
std::string format_length(double n);

}  // namespace mixlab::reports
