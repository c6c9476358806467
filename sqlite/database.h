#pragma once
// One SQLite layer for the whole project (the results store, `mixlab show` and the reports): an
// owned connection and its prepared statements over the SQLite C API (sqlite3.h), with bound
// parameters only, so nothing a user types is pasted into SQL.  It knows nothing of mixlab's
// tables (docs/results-schema.md): harness/store.h and reports/database.h build on it.

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

struct sqlite3;

namespace mixlab::sqlite {

// Any failure of SQLite: the message names the file, what SQLite said and the statement.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Access {
  read_only,   // the file must exist; nothing is written
  read_write,  // the file must exist
  create,      // read-write, the file is created when missing
};

struct OpenOptions {
  Access access = Access::read_only;
  int busy_timeout_ms = 5000;  // how long a statement waits for another process's write lock
  bool uri_names = false;      // accept "file:...?mode=ro" names (needed to ATTACH such a URI)
};

// An open database file (":memory:" for a throw-away one).  Not copyable; closed on destruction.
class Database {
 public:
  Database(const std::string& path, const OpenOptions& options);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  sqlite3* handle() { return handle_; }
  const std::string& path() const { return path_; }

  // Statements without parameters (DDL, PRAGMA, BEGIN, COMMIT), run to completion.
  void execute(const std::string& sql);
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT, rolled back when `body` throws.  The write
  // lock is taken at BEGIN, so the busy timeout waits for other writers there.
  void transaction(const std::function<void()>& body);

  // `schema` is "main", "temp" or the name of an attached database.
  bool has_table(const std::string& table, const std::string& schema = "main");
  std::vector<std::string> table_columns(const std::string& table, const std::string& schema = "main");
  int64_t last_insert_rowid();
  std::string last_error();  // sqlite3_errmsg of the connection

 private:
  sqlite3* handle_ = nullptr;
  std::string path_;
};

}  // namespace mixlab::sqlite
