#include "harness/run_folder_records.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace mixlab {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
double number_or_nan(const json& row, const char* key) {
  return row.contains(key) && row[key].is_number() ? row[key].get<double>() : std::numeric_limits<double>::quiet_NaN();
}
std::optional<int64_t> optional_integer(const json& row, const char* key) {
  if (!row.contains(key) || !row[key].is_number_integer()) return std::nullopt;
  return row[key].get<int64_t>();
}
}  // namespace

RunFolderRecords::RunFolderRecords(const fs::path& run_dir, TrainingRecords& database)
    : file_(run_dir / kFileName), database_(database) {}

bool RunFolderRecords::exists() const { return fs::exists(file_); }

void RunFolderRecords::append(const std::string& line) {
  std::ofstream out(file_, std::ios::app | std::ios::binary);
  out << line << '\n';
  out.flush();
  if (!out) throw std::runtime_error(file_.string() + ": cannot append the training record");
}

void RunFolderRecords::log_step(int64_t step, int64_t tokens, double flops, double loss, double lr,
                                double tokens_per_s, double elapsed_s) {
  database_.log_step(step, tokens, flops, loss, lr, tokens_per_s, elapsed_s);
  append(json{{"step", step}, {"tokens", tokens}, {"flops", flops}, {"loss", loss}, {"lr", lr},
              {"tokens_per_s", tokens_per_s}, {"elapsed_s", elapsed_s}, {"implementation", implementation_},
              {"execution", execution_}, {"peak_flops", peak_flops_}}
             .dump());
}

void RunFolderRecords::set_implementation(const std::string& implementation) {
  implementation_ = implementation;
  database_.set_implementation(implementation);
}

void RunFolderRecords::set_execution(const std::string& execution) {
  execution_ = execution;
  database_.set_execution(execution);
}

void RunFolderRecords::set_peak_flops(double peak_flops) {
  peak_flops_ = peak_flops;
  database_.set_peak_flops(peak_flops);
}

void RunFolderRecords::log_evaluation(int64_t step, const std::string& task, const std::string& metric, double value,
                                      std::optional<int64_t> seq_len, std::optional<int64_t> bucket,
                                      const std::string& extra_json) {
  database_.log_evaluation(step, task, metric, value, seq_len, bucket, extra_json);
  append(json{{"step", step}, {"task", task}, {"metric", metric}, {"value", value},
              {"seq_len", seq_len ? json(*seq_len) : json(nullptr)}, {"bucket", bucket ? json(*bucket) : json(nullptr)},
              {"extra", extra_json}}
             .dump());
}

int64_t RunFolderRecords::restore_to(int64_t step) {
  database_.discard_after(step);
  std::vector<json> kept;
  {
    std::ifstream in(file_, std::ios::binary);
    for (std::string line; std::getline(in, line);) {
      json row;
      try {
        row = json::parse(line);
      } catch (const json::parse_error&) {
        continue;  // the last line of a run killed while appending
      }
      if (row.is_object() && row.contains("step") && row["step"].is_number_integer() &&
          row["step"].get<int64_t>() <= step)
        kept.push_back(std::move(row));
    }
  }
  // Rewrite the file with the kept rows (beside it, then renamed over it).
  if (exists() || !kept.empty()) {
    const fs::path temporary = file_.string() + ".tmp";
    {
      std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
      for (const auto& row : kept) out << row.dump() << '\n';
      if (!out) throw std::runtime_error(temporary.string() + ": cannot write");
    }
    fs::rename(temporary, file_);
  }
  for (const auto& row : kept) {
    const int64_t s = row["step"].get<int64_t>();
    if (row.contains("task"))
      database_.log_evaluation(s, row.value("task", ""), row.value("metric", ""), number_or_nan(row, "value"),
                               optional_integer(row, "seq_len"), optional_integer(row, "bucket"), row.value("extra", ""));
    else {
      database_.set_implementation(row.value("implementation", std::string()));
      database_.set_execution(row.value("execution", std::string()));
      database_.set_peak_flops(row.contains("peak_flops") && row["peak_flops"].is_number() ? row["peak_flops"].get<double>() : 0.0);
      database_.log_step(s, row.value("tokens", int64_t{0}), number_or_nan(row, "flops"), number_or_nan(row, "loss"),
                         number_or_nan(row, "lr"), number_or_nan(row, "tokens_per_s"), number_or_nan(row, "elapsed_s"));
    }
  }
  database_.flush();
  return static_cast<int64_t>(kept.size());
}

}  // namespace mixlab
