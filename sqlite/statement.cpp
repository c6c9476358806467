// The prepared statement of sqlite/statement.h.

#include "sqlite/statement.h"

#include <sqlite3.h>

namespace mixlab::sqlite {

Statement::Statement(Database& database, const std::string& sql) : database_(database), sql_(sql) {
  if (sqlite3_prepare_v2(database.handle(), sql.c_str(), -1, &statement_, nullptr) != SQLITE_OK)
    throw Error(database.path() + ": " + database.last_error() + " in: " + sql);
}

Statement::~Statement() { sqlite3_finalize(statement_); }

namespace {
void check_bind(int rc, Database& database, int index) {
  if (rc != SQLITE_OK)
    throw Error(database.path() + ": cannot bind parameter " + std::to_string(index) + ": " + database.last_error());
}
}  // namespace

Statement& Statement::bind(int index, std::nullptr_t) {
  check_bind(sqlite3_bind_null(statement_, index), database_, index);
  return *this;
}

Statement& Statement::bind(int index, int64_t value) {
  check_bind(sqlite3_bind_int64(statement_, index, value), database_, index);
  return *this;
}

Statement& Statement::bind(int index, double value) {
  if (!std::isfinite(value)) return bind(index, nullptr);
  check_bind(sqlite3_bind_double(statement_, index, value), database_, index);
  return *this;
}

Statement& Statement::bind(int index, const std::string& value) {
  check_bind(sqlite3_bind_text(statement_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT),
             database_, index);
  return *this;
}

Statement& Statement::bind(int index, const std::optional<double>& value) {
  return value ? bind(index, *value) : bind(index, nullptr);
}

Statement& Statement::bind(int index, const std::optional<std::string>& value) {
  return value ? bind(index, *value) : bind(index, nullptr);
}

Statement& Statement::bind(int index, const Value& value) {
  return std::visit([&](const auto& held) -> Statement& { return bind(index, held); }, value);
}

Statement& Statement::bind_all(const std::vector<Value>& values, int first_index) {
  for (size_t i = 0; i < values.size(); ++i) bind(first_index + static_cast<int>(i), values[i]);
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(statement_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw Error(database_.path() + ": " + database_.last_error() + " in: " + sql_);
}

void Statement::run() {
  while (step()) {
  }
}

void Statement::reset() {
  sqlite3_reset(statement_);
  sqlite3_clear_bindings(statement_);
}

int Statement::columns() const { return sqlite3_column_count(statement_); }

std::string Statement::column_name(int column) const { return sqlite3_column_name(statement_, column); }

bool Statement::is_null(int column) const { return sqlite3_column_type(statement_, column) == SQLITE_NULL; }

int64_t Statement::integer(int column) const { return sqlite3_column_int64(statement_, column); }

double Statement::real(int column, double if_null) const {
  return is_null(column) ? if_null : sqlite3_column_double(statement_, column);
}

std::string Statement::text(int column) const {
  const auto* bytes = sqlite3_column_text(statement_, column);
  return bytes ? std::string(reinterpret_cast<const char*>(bytes), sqlite3_column_bytes(statement_, column)) : "";
}

}  // namespace mixlab::sqlite
