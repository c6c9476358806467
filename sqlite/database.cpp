// The connection of sqlite/database.h.

#include "sqlite/database.h"

#include "sqlite/statement.h"

#include <sqlite3.h>

namespace mixlab::sqlite {

namespace {
int open_flags(const OpenOptions& options) {
  int flags = SQLITE_OPEN_FULLMUTEX;
  switch (options.access) {
    case Access::read_only: flags |= SQLITE_OPEN_READONLY; break;
    case Access::read_write: flags |= SQLITE_OPEN_READWRITE; break;
    case Access::create: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE; break;
  }
  return options.uri_names ? flags | SQLITE_OPEN_URI : flags;
}
}  // namespace

Database::Database(const std::string& path, const OpenOptions& options) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &handle_, open_flags(options), nullptr) != SQLITE_OK) {
    const std::string message = handle_ ? sqlite3_errmsg(handle_) : "out of memory";
    sqlite3_close(handle_);
    handle_ = nullptr;
    throw Error(path + ": cannot open the database: " + message);
  }
  sqlite3_busy_timeout(handle_, options.busy_timeout_ms);
}

Database::~Database() { sqlite3_close(handle_); }

void Database::execute(const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(handle_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    throw Error(path_ + ": " + message + " in: " + sql);
  }
}

void Database::transaction(const std::function<void()>& body) {
  execute("BEGIN IMMEDIATE");
  try {
    body();
    execute("COMMIT");
  } catch (...) {
    sqlite3_exec(handle_, "ROLLBACK", nullptr, nullptr, nullptr);  // keeps the first error
    throw;
  }
}

bool Database::has_table(const std::string& table, const std::string& schema) {
  // A schema name cannot be a parameter; it is one of main, temp or an ATTACH name we chose.
  Statement query(*this, "SELECT 1 FROM " + schema + ".sqlite_master WHERE type = 'table' AND name = ?");
  query.bind(1, table);
  return query.step();
}

std::vector<std::string> Database::table_columns(const std::string& table, const std::string& schema) {
  Statement info(*this, "PRAGMA " + schema + ".table_info(" + table + ")");
  std::vector<std::string> names;
  while (info.step()) names.push_back(info.text(1));
  return names;
}

int64_t Database::last_insert_rowid() { return sqlite3_last_insert_rowid(handle_); }

std::string Database::last_error() { return sqlite3_errmsg(handle_); }

}  // namespace mixlab::sqlite
