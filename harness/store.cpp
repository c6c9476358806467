#include "harness/store.h"

#include "harness/device.h"

#include <chrono>
#include <cmath>
#include <thread>
#include <cstdio>
#include <map>
#include <set>
#include <algorithm>
#include <vector>

namespace mixlab {

// ------------------------------------------------------------------------------ Store

namespace {
// The schema of docs/results-schema.md, version 1.
const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS sweeps (
  sweep_id INTEGER PRIMARY KEY, name TEXT, description TEXT, spec_path TEXT, spec_json TEXT,
  started_at TEXT, finished_at TEXT, git_commit TEXT, host TEXT, device TEXT, device_name TEXT,
  torch_version TEXT, dtype TEXT, shard TEXT);
CREATE TABLE IF NOT EXISTS points (
  point_id TEXT PRIMARY KEY, sweep_name TEXT, label TEXT, mixers TEXT, config_json TEXT,
  status TEXT, error TEXT, parameters INTEGER, embedding_parameters INTEGER, sweep_id INTEGER,
  started_at TEXT, finished_at TEXT);
CREATE TABLE IF NOT EXISTS measurements (
  point_id TEXT, phase TEXT, seq_len INTEGER, batch INTEGER, status TEXT, error TEXT,
  median_ms REAL, mean_ms REAL, stddev_ms REAL, min_ms REAL, max_ms REAL, repeats INTEGER,
  tokens_per_s REAL, flops REAL, tflops_per_s REAL, peak_memory_bytes REAL, state_bytes REAL,
  measured_state_bytes REAL, device TEXT, dtype TEXT, torch_version TEXT, git_commit TEXT,
  created_at TEXT, extra_json TEXT,
  PRIMARY KEY (point_id, phase, seq_len));
CREATE TABLE IF NOT EXISTS train_log (
  point_id TEXT, step INTEGER, tokens INTEGER, flops REAL, loss REAL, lr REAL, tokens_per_s REAL,
  elapsed_s REAL, PRIMARY KEY (point_id, step));
CREATE TABLE IF NOT EXISTS evaluations (
  point_id TEXT, step INTEGER, task TEXT, metric TEXT, value REAL, seq_len INTEGER, bucket INTEGER,
  extra_json TEXT, PRIMARY KEY (point_id, step, task, metric, seq_len, bucket));
)SQL";

// Added after version 1, each only when missing (so every branch's databases compose):
// sweep membership, and the claim a running point carries (docs/results-schema.md).
const char* kSweepPointsTable =
    "CREATE TABLE IF NOT EXISTS sweep_points (sweep_name TEXT, point_id TEXT, position INTEGER, "
    "PRIMARY KEY (sweep_name, point_id))";
const std::vector<std::pair<std::string, std::string>> kClaimColumns = {
    {"attempts", "INTEGER"}, {"claim_pid", "INTEGER"}, {"claim_host", "TEXT"}, {"heartbeat_s", "REAL"},
    {"claim_stage", "TEXT"}};

// An SQLite URI for a read-only attachment of `path` (RFC 3986 escapes for the characters that
// have a meaning in a URI).
std::string read_only_uri(const std::string& path) {
  std::string out = "file:";
  for (unsigned char c : path) {
    if (c == '%' || c == '?' || c == '#' || c < 0x20) {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "?mode=ro";
}
}  // namespace

Store::Store(const std::string& path, Mode mode) : path_(path), mode_(mode) {
  // Another shard process may hold the write lock for the length of one point's transaction.
  sqlite::OpenOptions options;
  options.access = mode == Mode::read_only ? sqlite::Access::read_only : sqlite::Access::create;
  options.busy_timeout_ms = 120000;
  options.uri_names = true;  // merge_from attaches a read-only URI
  db_ = std::make_unique<sqlite::Database>(path, options);
  if (mode == Mode::read_only) {
    try {
      check_mixlab_database();
      // A database from before sweep membership: its points belong to the sweep that ran them.
      if (!db_->has_table("sweep_points", "main"))
        execute("CREATE TEMP TABLE sweep_points AS SELECT sweep_name, point_id, NULL AS position FROM points "
                "WHERE sweep_name IS NOT NULL");
    } catch (...) {
      db_.reset();
      throw;
    }
    return;
  }
  if (path != ":memory:") {
    // Switching a new file to WAL needs a moment alone with it; a second process opening the file
    // at the same instant can make this fail once, so it is retried.
    for (int attempt = 0;; ++attempt) {
      try {
        execute("PRAGMA journal_mode=WAL");
        break;
      } catch (const sqlite::Error&) {
        if (attempt == 200) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
      }
    }
  }
  // In WAL mode NORMAL keeps the database consistent on a crash; a killed process loses nothing
  // that was committed.
  execute("PRAGMA synchronous=NORMAL");
  create_schema();
}

void Store::check_mixlab_database() {
  bool ok = db_->has_table("meta", "main") && db_->has_table("points", "main");
  if (ok) {
    Statement version(*db_, "SELECT value FROM meta WHERE key = 'schema_version'");
    ok = version.step();
    if (ok && version.text(0) != std::to_string(kSchemaVersion))
      throw StoreError(path_ + " has schema version " + version.text(0) + "; this mixlab reads version " +
                       std::to_string(kSchemaVersion));
  }
  if (!ok)
    throw NotMixlabDatabase(path_ + " is not a mixlab results database (no meta.schema_version; see "
                                    "docs/results-schema.md)");
}

Store::~Store() = default;

void Store::execute(const std::string& sql) { db_->execute(sql); }

// BEGIN IMMEDIATE takes the write lock at once; the busy timeout waits for other writers.
void Store::transaction(const std::function<void()>& body) { db_->transaction(body); }

// Columns added after version 1 shipped, as idempotent migrations: a database written before
// them gains the column (NULL in old rows) when it is opened.
struct AddedColumn {
  const char* table;
  const char* column;
  const char* type;
};
const AddedColumn kAddedColumns[] = {
    {"measurements", "implementation", "TEXT"},  // kernel or reference per op (core/implementation.h)
    {"train_log", "implementation", "TEXT"},
    {"measurements", "execution", "TEXT"},  // cuda_graph or eager (harness/cuda_graph.h)
    // Inference state bytes of one sequence at the evaluation's seq_len (cost().state_bytes),
    // so that accuracy can be read against state size; copied from extra_json.state_bytes.
    {"evaluations", "state_bytes", "REAL"},
    // Model FLOPs utilisation of the step against the device's measured matmul rate
    // (harness/peak_flops.h), and that rate.
    {"train_log", "mfu", "REAL"},
    {"train_log", "peak_flops", "REAL"},
    {"train_log", "execution", "TEXT"},  // cuda_graph or eager (harness/graphed_train_step.h)
};

void Store::add_missing_columns() {
  for (const auto& added : kAddedColumns) {
    const auto columns = db_->table_columns(added.table, "main");
    if (std::find(columns.begin(), columns.end(), added.column) == columns.end())
      execute(std::string("ALTER TABLE ") + added.table + " ADD COLUMN " + added.column + " " + added.type);
  }
}

// ------------------------------------------------------------------------------ hyperparameter columns

namespace {
// Columns of `points` that repeat the main hyperparameters of config_json, so that pandas and SQL
// can group by them without parsing JSON (docs/results-schema.md).  Added to an older database
// when missing (no schema version change) and filled from its config_json.
struct HyperparameterColumn {
  const char* name;
  const char* type;
};
const HyperparameterColumn kHyperparameterColumns[] = {
    {"d_model", "INTEGER"}, {"n_layers", "INTEGER"},      {"n_heads", "INTEGER"}, {"vocab_size", "INTEGER"},
    {"window", "INTEGER"},  {"segment_size", "INTEGER"}, {"d_state", "INTEGER"}, {"train_source", "TEXT"}};

// The column values of one config: model fields, the first sublayer that sets window /
// segment_size / d_state, train.data.source (corpus when training without one); null otherwise.
std::vector<nlohmann::json> hyperparameter_values(const std::string& config_json) {
  nlohmann::json config = nlohmann::json::parse(config_json, nullptr, false);
  if (!config.is_object()) config = nlohmann::json::object();
  const nlohmann::json model = config.value("model", nlohmann::json::object());
  std::vector<nlohmann::json> values;
  for (const auto& column : kHyperparameterColumns) {
    const std::string name = column.name;
    nlohmann::json value;
    if (name == "train_source") {
      if (config.contains("train")) value = config["train"].value("data", nlohmann::json::object()).value("source", "corpus");
    } else if (model.contains(name)) {
      value = model[name];
    } else if (model.contains("pattern") && model["pattern"].is_array()) {
      for (const auto& sublayer : model["pattern"])
        if (sublayer.is_object() && sublayer.contains(name)) {
          value = sublayer[name];
          break;
        }
    }
    values.push_back(value);
  }
  return values;
}

void bind_json(Statement& statement, int index, const nlohmann::json& value) {
  if (value.is_number_integer()) statement.bind(index, value.get<int64_t>());
  else if (value.is_number()) statement.bind(index, value.get<double>());
  else if (value.is_string()) statement.bind(index, value.get<std::string>());
  else statement.bind(index, nullptr);
}

void write_hyperparameters(sqlite::Database& db, const std::string& point_id, const std::string& config_json) {
  std::string sql = "UPDATE points SET ";
  int index = 1;
  for (const auto& column : kHyperparameterColumns) sql += std::string(index++ > 1 ? ", " : "") + column.name + " = ?";
  sql += " WHERE point_id = ?";
  Statement update(db, sql);
  const auto values = hyperparameter_values(config_json);
  for (size_t i = 0; i < values.size(); ++i) bind_json(update, static_cast<int>(i + 1), values[i]);
  update.bind(static_cast<int>(values.size() + 1), point_id).run();
}
}  // namespace

void Store::add_hyperparameter_columns() {
  std::set<std::string> present;
  {
    Statement columns(*db_, "PRAGMA table_info(points)");
    while (columns.step()) present.insert(columns.text(1));
  }
  bool added = false;
  for (const auto& column : kHyperparameterColumns)
    if (!present.count(column.name)) {
      execute(std::string("ALTER TABLE points ADD COLUMN ") + column.name + " " + column.type);
      added = true;
    }
  if (!added) return;
  std::vector<std::pair<std::string, std::string>> points;
  {
    Statement all(*db_, "SELECT point_id, COALESCE(config_json, '{}') FROM points");
    while (all.step()) points.emplace_back(all.text(0), all.text(1));
  }
  for (const auto& [id, config] : points) write_hyperparameters(*db_, id, config);
}

void Store::create_schema() {
  transaction([&] {
    execute(kSchema);
    add_missing_columns();
    add_hyperparameter_columns();
    Statement version(*db_, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (version.step()) {
      if (version.text(0) != std::to_string(kSchemaVersion))
        throw StoreError(path_ + " has schema version " + version.text(0) + "; this mixlab reads version " +
                         std::to_string(kSchemaVersion));
    } else {
      Statement insert(*db_, "INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('created_at', ?)");
      insert.bind(1, std::to_string(kSchemaVersion)).bind(2, utc_now_iso8601()).run();
    }
    migrate_schema();
  });
}

void Store::migrate_schema() {
  if (!db_->has_table("sweep_points", "main")) {
    execute(kSweepPointsTable);
    execute("INSERT OR IGNORE INTO sweep_points (sweep_name, point_id) SELECT sweep_name, point_id FROM points "
            "WHERE sweep_name IS NOT NULL");
  }
  const auto columns = db_->table_columns("points", "main");
  for (const auto& [name, type] : kClaimColumns)
    if (std::find(columns.begin(), columns.end(), name) == columns.end())
      execute("ALTER TABLE points ADD COLUMN " + name + " " + type);
}

void Store::register_sweep_points(const std::string& name, const std::vector<PointRecord>& points) {
  transaction([&] {
    Statement pending(*db_, "INSERT OR IGNORE INTO points (point_id, sweep_name, label, mixers, config_json, status) "
                           "VALUES (?,?,?,?,?,'pending')");
    Statement member(*db_, "INSERT OR REPLACE INTO sweep_points (sweep_name, point_id, position) VALUES (?,?,?)");
    for (size_t k = 0; k < points.size(); ++k) {
      const PointRecord& p = points[k];
      pending.reset();
      pending.bind(1, p.point_id).bind(2, name).bind(3, p.label).bind(4, p.mixers).bind(5, p.config_json).run();
      member.reset();
      member.bind(1, name).bind(2, p.point_id).bind(3, static_cast<int64_t>(k)).run();
    }
  });
}

int64_t Store::begin_sweep(const SweepRecord& r) {
  int64_t id = 0;
  transaction([&] {
    Statement insert(*db_,
                     "INSERT INTO sweeps (name, description, spec_path, spec_json, started_at, git_commit, host, "
                     "device, device_name, torch_version, dtype, shard) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
    insert.bind(1, r.name).bind(2, r.description).bind(3, r.spec_path).bind(4, r.spec_json).bind(5, utc_now_iso8601())
        .bind(6, r.git_commit).bind(7, r.host).bind(8, r.device).bind(9, r.device_name).bind(10, r.torch_version)
        .bind(11, r.dtype).bind(12, r.shard);
    insert.run();
    id = db_->last_insert_rowid();
  });
  return id;
}

void Store::finish_sweep(int64_t sweep_id) {
  transaction([&] {
    Statement update(*db_, "UPDATE sweeps SET finished_at = ? WHERE sweep_id = ?");
    update.bind(1, utc_now_iso8601()).bind(2, sweep_id).run();
  });
}

std::optional<std::string> Store::point_status(const std::string& point_id) {
  Statement query(*db_, "SELECT status FROM points WHERE point_id = ?");
  query.bind(1, point_id);
  if (!query.step()) return std::nullopt;
  return query.text(0);
}

int64_t Store::measurement_count(const std::string& point_id) {
  Statement query(*db_, "SELECT COUNT(*) FROM measurements WHERE point_id = ?");
  query.bind(1, point_id);
  query.step();
  return query.integer(0);
}

void Store::start_point(const PointRecord& p, int64_t sweep_id) {
  transaction([&] {
    Statement upsert(*db_,
                     "INSERT INTO points (point_id, sweep_name, label, mixers, config_json, status, error, sweep_id, "
                     "started_at) VALUES (?,?,?,?,?,'running',NULL,?,?) "
                     "ON CONFLICT(point_id) DO UPDATE SET sweep_name=excluded.sweep_name, label=excluded.label, "
                     "mixers=excluded.mixers, config_json=excluded.config_json, status='running', error=NULL, "
                     "sweep_id=excluded.sweep_id, started_at=excluded.started_at, finished_at=NULL");
    upsert.bind(1, p.point_id).bind(2, p.sweep_name).bind(3, p.label).bind(4, p.mixers).bind(5, p.config_json)
        .bind(6, sweep_id).bind(7, utc_now_iso8601());
    upsert.run();
    write_hyperparameters(*db_, p.point_id, p.config_json);
  });
}

namespace {

// Statuses a resumed point measures again: a time budget restarts with the point.
constexpr const char* kRemeasuredStatus = "time_budget";

void insert_measurement(sqlite::Database& db, const std::string& point_id, const SweepRecord& provenance, const Measurement& m,
                        const std::string& now) {
  Statement remove(db, "DELETE FROM measurements WHERE point_id = ? AND phase = ? AND seq_len = ?");
  remove.bind(1, point_id).bind(2, m.phase).bind(3, m.seq_len).run();
  Statement insert(db,
                   "INSERT INTO measurements (point_id, phase, seq_len, batch, status, error, median_ms, mean_ms, "
                   "stddev_ms, min_ms, max_ms, repeats, tokens_per_s, flops, tflops_per_s, peak_memory_bytes, "
                   "state_bytes, measured_state_bytes, device, dtype, torch_version, git_commit, created_at, "
                   "extra_json, implementation, execution) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  insert.bind(1, point_id).bind(2, m.phase).bind(3, m.seq_len).bind(4, m.batch).bind(5, m.status);
  if (m.error.empty()) insert.bind(6, nullptr); else insert.bind(6, m.error);
  if (m.timing) {
    insert.bind(7, m.timing->median).bind(8, m.timing->mean).bind(9, m.timing->stddev).bind(10, m.timing->min)
        .bind(11, m.timing->max).bind(12, m.timing->repeats);
  } else {
    for (int column = 7; column <= 12; ++column) insert.bind(column, nullptr);
  }
  insert.bind(13, m.tokens_per_s).bind(14, m.flops).bind(15, m.tflops_per_s).bind(16, m.peak_memory_bytes)
      .bind(17, m.state_bytes).bind(18, m.measured_state_bytes).bind(19, provenance.device)
      .bind(20, provenance.dtype).bind(21, provenance.torch_version).bind(22, provenance.git_commit).bind(23, now)
      .bind(24, m.extra.dump());
  if (m.implementation.empty()) insert.bind(25, nullptr); else insert.bind(25, m.implementation);
  insert.bind(26, m.execution);
  insert.run();
}

}  // namespace

StoredMeasurements Store::stored_measurements(const std::string& point_id) {
  StoredMeasurements stored;
  Statement query(*db_, "SELECT phase, seq_len, status FROM measurements WHERE point_id = ? AND status != ?");
  query.bind(1, point_id).bind(2, kRemeasuredStatus);
  while (query.step()) {
    const std::string phase = query.text(0);
    const int64_t n = query.integer(1);
    stored.done.insert({phase, n});
    if (query.text(2) == "oom") {
      auto [at, inserted] = stored.oom_at.emplace(phase, n);
      if (!inserted) at->second = std::min(at->second, n);
    }
  }
  return stored;
}

void Store::clear_measurements(const std::string& point_id) {
  transaction([&] { Statement(*db_, "DELETE FROM measurements WHERE point_id = ?").bind(1, point_id).run(); });
}

void Store::store_measurement(const std::string& point_id, const SweepRecord& provenance, const Measurement& row) {
  transaction([&] { insert_measurement(*db_, point_id, provenance, row, utc_now_iso8601()); });
}

void Store::record_measurements(const PointRecord& p, int64_t sweep_id, const SweepRecord& provenance,
                                const std::vector<Measurement>& rows, bool finished,
                                const std::function<void()>& before_commit, bool keep_stored) {
  transaction([&] {
    Statement remove(*db_, keep_stored ? "DELETE FROM measurements WHERE point_id = ? AND status = ?"
                                       : "DELETE FROM measurements WHERE point_id = ?");
    remove.bind(1, p.point_id);
    if (keep_stored) remove.bind(2, kRemeasuredStatus);
    remove.run();
    const std::string now = utc_now_iso8601();
    for (const auto& m : rows) insert_measurement(*db_, p.point_id, provenance, m, now);
    Statement update(*db_, "UPDATE points SET parameters = ?, embedding_parameters = ?, sweep_id = ? WHERE point_id = ?");
    update.bind(1, p.parameters).bind(2, p.embedding_parameters).bind(3, sweep_id).bind(4, p.point_id).run();
    if (finished) {
      Statement done(*db_, "UPDATE points SET status = 'done', error = NULL, finished_at = ? WHERE point_id = ?");
      done.bind(1, now).bind(2, p.point_id).run();
    }
    if (before_commit) before_commit();
  });
}

void Store::finish_point(const std::string& point_id) {
  transaction([&] {
    Statement update(*db_, "UPDATE points SET status = 'done', error = NULL, finished_at = ? WHERE point_id = ?");
    update.bind(1, utc_now_iso8601()).bind(2, point_id).run();
  });
}

void Store::fail_point(const std::string& point_id, const std::string& error) {
  transaction([&] {
    Statement update(*db_, "UPDATE points SET status = 'failed', error = ?, finished_at = ? WHERE point_id = ?");
    update.bind(1, error).bind(2, utc_now_iso8601()).bind(3, point_id).run();
  });
}

// ------------------------------------------------------------------------------ merge

int64_t Store::merge_from(const std::string& other_path) {
  {
    std::FILE* exists = std::fopen(other_path.c_str(), "rb");
    if (!exists) throw StoreError("cannot read " + other_path + ": no such file");
    std::fclose(exists);
    Store other(other_path, Mode::read_only);  // a mixlab database of this schema version; never written
  }
  {
    Statement attach(*db_, "ATTACH DATABASE ? AS source");
    attach.bind(1, read_only_uri(other_path)).run();
  }
  // The columns both sides have: another mixlab version may have added some (all are nullable).
  std::map<std::string, std::string> shared_columns;
  for (const char* table : {"points", "measurements", "train_log", "evaluations"}) {
    const auto here = db_->table_columns(table, "main");
    std::string list;
    for (const auto& column : db_->table_columns(table, "source"))
      if (std::find(here.begin(), here.end(), column) != here.end()) list += (list.empty() ? "" : ", ") + column;
    shared_columns[table] = list;
  }
  const bool source_has_membership = db_->has_table("sweep_points", "source");
  int64_t taken = 0;
  try {
    transaction([&] {
      // Sweeps: the same invocation is recognised by name, start time, host and shard.
      std::map<int64_t, int64_t> sweep_ids;
      Statement sweeps(*db_, "SELECT sweep_id, name, started_at, host, IFNULL(shard, '') FROM source.sweeps");
      while (sweeps.step()) {
        Statement find(*db_, "SELECT sweep_id FROM main.sweeps WHERE name IS ? AND started_at IS ? AND host IS ? "
                            "AND IFNULL(shard, '') = ?");
        find.bind(1, sweeps.text(1)).bind(2, sweeps.text(2)).bind(3, sweeps.text(3)).bind(4, sweeps.text(4));
        if (find.step()) {
          sweep_ids[sweeps.integer(0)] = find.integer(0);
          continue;
        }
        Statement copy(*db_, "INSERT INTO main.sweeps (name, description, spec_path, spec_json, started_at, "
                            "finished_at, git_commit, host, device, device_name, torch_version, dtype, shard) "
                            "SELECT name, description, spec_path, spec_json, started_at, finished_at, git_commit, "
                            "host, device, device_name, torch_version, dtype, shard FROM source.sweeps "
                            "WHERE sweep_id = ?");
        copy.bind(1, sweeps.integer(0)).run();
        sweep_ids[sweeps.integer(0)] = db_->last_insert_rowid();
      }
      // Points: take a point that is new, or better (done over not done, then the later finish).
      // (Collected first: the loop below writes the table the query reads.)
      struct Candidate {
        std::string id;
        std::optional<int64_t> sweep_id;
        bool exists, better;
      };
      std::vector<Candidate> candidates;
      {
        Statement query(*db_, "SELECT s.point_id, s.sweep_id, m.point_id IS NOT NULL, "
                             "s.status = 'done' AND (m.status IS NOT 'done' OR s.finished_at > m.finished_at) "
                             "FROM source.points s LEFT JOIN main.points m ON m.point_id = s.point_id");
        while (query.step())
          candidates.push_back({query.text(0), query.is_null(1) ? std::nullopt : std::optional<int64_t>(query.integer(1)),
                                query.integer(2) != 0, query.integer(3) != 0});
      }
      for (const auto& candidate : candidates) {
        const std::string& id = candidate.id;
        if (candidate.exists && !candidate.better) continue;
        for (const char* table : {"points", "measurements", "train_log", "evaluations"}) {
          Statement remove(*db_, std::string("DELETE FROM main.") + table + " WHERE point_id = ?");
          remove.bind(1, id).run();
          const std::string& columns = shared_columns[table];
          Statement copy(*db_, std::string("INSERT INTO main.") + table + " (" + columns + ") SELECT " + columns +
                                  " FROM source." + table + " WHERE point_id = ?");
          copy.bind(1, id).run();
        }
        if (candidate.sweep_id) {
          Statement remap(*db_, "UPDATE main.points SET sweep_id = ? WHERE point_id = ?");
          const auto found = sweep_ids.find(*candidate.sweep_id);
          if (found != sweep_ids.end()) remap.bind(1, found->second); else remap.bind(1, nullptr);
          remap.bind(2, id).run();
        }
        ++taken;
      }
      // Membership is a union: a point belongs to every sweep that listed it in either database.
      execute(source_has_membership
                  ? "INSERT OR IGNORE INTO main.sweep_points (sweep_name, point_id, position) "
                    "SELECT sweep_name, point_id, position FROM source.sweep_points"
                  : "INSERT OR IGNORE INTO main.sweep_points (sweep_name, point_id) "
                    "SELECT sweep_name, point_id FROM source.points WHERE sweep_name IS NOT NULL");
    });
  } catch (...) {
    try {
      execute("DETACH DATABASE source");
    } catch (const sqlite::Error&) {
      // the first error is the one to report
    }
    throw;
  }
  execute("DETACH DATABASE source");
  return taken;
}

}  // namespace mixlab
