// SQLite C API wrappers for reports/.

#include "reports/database.h"

#include <sqlite3.h>

#include <cmath>

namespace mixlab::reports {

Database::Database(const std::string& path, bool writable) : path_(path) {
  const int flags = writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
  if (sqlite3_open_v2(path.c_str(), &handle_, flags, nullptr) != SQLITE_OK) {
    std::string message = handle_ ? sqlite3_errmsg(handle_) : "out of memory";
    sqlite3_close(handle_);
    handle_ = nullptr;
    throw ReportError(path + ": cannot open results database: " + message);
  }
  sqlite3_busy_timeout(handle_, 5000);  // a sweep may be writing (WAL) while we read
  if (!has_table("points") || !has_table("measurements"))
    throw ReportError(path + ": not a mixlab results database (no `points`/`measurements` tables; "
                             "see docs/results-schema.md)");
  // A database from before sweep membership: its points belong to the sweep that ran them.
  if (!has_table("sweep_points"))
    execute("CREATE TEMP TABLE sweep_points AS SELECT sweep_name, point_id FROM points WHERE sweep_name IS NOT NULL");
}

Database::~Database() { sqlite3_close(handle_); }

void Database::execute(const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(handle_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    throw ReportError(path_ + ": " + message + " in: " + sql);
  }
}

bool Database::has_table(const std::string& name) {
  Statement statement(*this, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
  statement.bind(1, name);
  return statement.step();
}

Statement::Statement(Database& database, const std::string& sql) : database_(database) {
  if (sqlite3_prepare_v2(database.handle(), sql.c_str(), -1, &statement_, nullptr) != SQLITE_OK)
    throw ReportError(database.path() + ": " + sqlite3_errmsg(database.handle()) + " in: " + sql);
}

Statement::~Statement() { sqlite3_finalize(statement_); }

void Statement::bind(int index, const BoundValue& value) {
  int rc = SQLITE_OK;
  if (const auto* integer = std::get_if<int64_t>(&value)) {
    rc = sqlite3_bind_int64(statement_, index, *integer);
  } else if (const auto* real = std::get_if<double>(&value)) {
    rc = std::isfinite(*real) ? sqlite3_bind_double(statement_, index, *real) : sqlite3_bind_null(statement_, index);
  } else {
    const auto& text = std::get<std::string>(value);
    rc = sqlite3_bind_text(statement_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  if (rc != SQLITE_OK)
    throw ReportError(database_.path() + ": cannot bind parameter " + std::to_string(index) + ": " +
                      sqlite3_errmsg(database_.handle()));
}

void Statement::bind_all(const std::vector<BoundValue>& values, int first_index) {
  for (size_t i = 0; i < values.size(); ++i) bind(first_index + static_cast<int>(i), values[i]);
}

bool Statement::step() {
  const int rc = sqlite3_step(statement_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw ReportError(database_.path() + ": " + sqlite3_errmsg(database_.handle()));
}

bool Statement::is_null(int column) { return sqlite3_column_type(statement_, column) == SQLITE_NULL; }

int64_t Statement::integer(int column) { return sqlite3_column_int64(statement_, column); }

double Statement::real(int column) {
  return is_null(column) ? std::numeric_limits<double>::quiet_NaN() : sqlite3_column_double(statement_, column);
}

std::string Statement::text(int column) {
  const auto* bytes = sqlite3_column_text(statement_, column);
  return bytes ? std::string(reinterpret_cast<const char*>(bytes), sqlite3_column_bytes(statement_, column)) : "";
}

}  // namespace mixlab::reports
