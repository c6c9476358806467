// Opening a results database for reports/.

#include "reports/database.h"

namespace mixlab::reports {

namespace {
sqlite::OpenOptions report_access(bool writable) {
  sqlite::OpenOptions options;
  options.access = writable ? sqlite::Access::read_write : sqlite::Access::read_only;
  options.busy_timeout_ms = 5000;  // a sweep may be writing (WAL) while we read
  return options;
}
}  // namespace

Database::Database(const std::string& path, bool writable) try : sqlite::Database(path, report_access(writable)) {
  if (!has_table("points") || !has_table("measurements"))
    throw ReportError(path + ": not a mixlab results database (no `points`/`measurements` tables; "
                             "see docs/results-schema.md)");
  // A database from before sweep membership: its points belong to the sweep that ran them.
  if (!has_table("sweep_points"))
    execute("CREATE TEMP TABLE sweep_points AS SELECT sweep_name, point_id FROM points WHERE sweep_name IS NOT NULL");
} catch (const sqlite::Error& error) {
  throw ReportError(error.what());
}

}  // namespace mixlab::reports
