#pragma once
// A prepared statement of sqlite/database.h: positional `?` parameters (1-based, as in SQLite),
// bound one by one (chained) or from a list, then stepped row by row.

#include "sqlite/database.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

struct sqlite3_stmt;

namespace mixlab::sqlite {

// A value bound to a `?` placeholder (nullptr: NULL).
using Value = std::variant<std::nullptr_t, int64_t, double, std::string>;

class Statement {
 public:
  Statement(Database& database, const std::string& sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, std::nullptr_t);
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, double value);  // NaN and ±Inf are stored as NULL
  Statement& bind(int index, const std::string& value);
  Statement& bind(int index, const char* value) { return bind(index, std::string(value)); }
  Statement& bind(int index, const std::optional<double>& value);
  Statement& bind(int index, const std::optional<std::string>& value);
  Statement& bind(int index, const Value& value);
  // values[i] to placeholder first_index + i.
  Statement& bind_all(const std::vector<Value>& values, int first_index = 1);

  bool step();  // true while a row is available; throws Error on failure
  void run();   // step to completion
  void reset();  // back to the first step, bindings cleared

  int columns() const;
  std::string column_name(int column) const;
  bool is_null(int column) const;
  int64_t integer(int column) const;  // 0 for NULL
  // `if_null` for NULL (NaN unless given: NaN is what bind() stores as NULL).
  double real(int column, double if_null = std::nan("")) const;
  std::string text(int column) const;  // "" for NULL

 private:
  Database& database_;
  sqlite3_stmt* statement_ = nullptr;
  std::string sql_;
};

}  // namespace mixlab::sqlite
