#include "harness/curves_csv.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace mixlab {

int64_t write_curves_csv(Store& store, const std::vector<std::string>& point_ids, const std::string& path) {
  const std::string temporary = path + ".tmp";
  std::ofstream out(temporary, std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + temporary);
  out << "point_id,label,step,kind,name,value\n";
  out.precision(10);
  int64_t rows = 0;
  auto emit = [&](const std::string& point, const std::string& label, int64_t step, const char* kind,
                  const std::string& name, double value) {
    out << point << ",\"" << label << "\"," << step << "," << kind << "," << name << "," << value << "\n";
    ++rows;
  };
  for (const auto& point : point_ids) {
    std::string label;
    Statement labels(store.handle(), "SELECT label FROM points WHERE point_id = ?");
    labels.bind(1, point);
    if (labels.step()) label = labels.text(0);
    Statement steps(store.handle(),
                    "SELECT step, loss, lr, tokens, tokens_per_s, elapsed_s, mfu FROM train_log WHERE point_id = ? ORDER BY step");
    steps.bind(1, point);
    while (steps.step()) {
      const char* names[] = {"loss", "lr", "tokens", "tokens_per_s", "elapsed_s", "mfu"};
      for (int column = 1; column <= 6; ++column)
        if (!steps.is_null(column)) emit(point, label, steps.integer(0), "train", names[column - 1], steps.real(column));
    }
    Statement evaluations(store.handle(),
                          "SELECT step, task || '/' || metric, value FROM evaluations WHERE point_id = ? AND bucket = -1 "
                          "AND value IS NOT NULL ORDER BY step, task, metric");
    evaluations.bind(1, point);
    while (evaluations.step()) emit(point, label, evaluations.integer(0), "eval", evaluations.text(1), evaluations.real(2, 0.0));
  }
  out.close();
  if (!out) throw std::runtime_error("cannot write " + temporary);
  std::filesystem::rename(temporary, path);
  return rows;
}

}  // namespace mixlab
