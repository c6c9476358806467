#pragma once
// Zoology's Figure 2 from a results database (Arora et al., "Zoology: Measuring and Improving
// Recall in Efficient Language Models", arXiv 2312.04927, Figure 2; experiments/paper/
// zoology-mqar.json): MQAR accuracy against d_model, one panel per (sequence length, pairs),
// one line per mixer, each point the best over a swept axis (the learning rate); accuracy
// against inference-state size (as Zoology and Based plot it); and a table beside the
// published values.
//
//   accuracy(p)    the point's last evaluated accuracy on its own training task
//                  (evaluations: task = train.data.source, seq_len = train.seq_len)
//   state(p)       evaluations.state_bytes of that row: the inference state of one sequence
//   row(line, L, K, d) = best_over_axis over the points of that configuration (reports/best_over.h)
//   line           the model without d_model: its name (model.name, else its mixers) and the
//                  sublayer settings W (window), S (segment_size), k (top_k), n (d_state)

#include "reports/best_over.h"
#include "reports/database.h"
#include "reports/document.h"
#include "reports/filter.h"
#include "reports/plots.h"
#include "reports/tables.h"

#include <functional>
#include <string>
#include <vector>

namespace mixlab::reports {

struct RecallRow {
  std::string line;               // "swa W=8", "mamba n=16", "scout-swa W=16 S=10"
  int64_t seq_len = 0, pairs = 0, d_model = 0;
  double accuracy = 0;            // best over the axis; NaN when no point of it has a result
  double state_bytes = 0;         // NaN when unknown
  std::string best_axis_value;    // the axis value of the best point ("" when none)
  int64_t candidates = 0;         // points tried (the axis' values)
  int64_t finished = 0;           // of them, the points that ran to their end (status 'done'):
                                  // fewer than candidates, the row may hold an unfinished point's
                                  // last evaluation (interrupted or still running), not a final one
};

// The best-over-`axis` rows of every trained synthetic-task point passing the filter, sorted by
// (line, seq_len, d_model).  Points without a train section are left out.
std::vector<RecallRow> recall_rows(Database& database, const Filter& filter, const std::string& axis);

// "short name" of a resolved model without its width, as described above.
std::string recall_line(const nlohmann::json& model);

// One accuracy-against-d_model plot per (seq_len, pairs), and one accuracy-against-state plot
// per (seq_len, pairs).
std::vector<PlotSpec> recall_plots(const std::vector<RecallRow>& rows, const std::string& axis);

// Every row: line, setting, d_model, accuracy, best axis value, state bytes, points tried, points done.
Table recall_table(const std::vector<RecallRow>& rows, const std::string& axis);

// The published values (Zoology, Figure 2) beside mixlab's rows for the architectures both
// have: attention (≥ 0.97 at every width and length), Hyena vs fft_conv (≤ 0.18 at every width
// at 512 / 64 pairs), RWKV vs linear_attention (the nearest fixed-state recurrence in mixlab;
// 0.02 / 0.03 / 0.16 / 0.37 at d = 64 / 128 / 256 / 512, 512 / 64 pairs), the difference stated.
Table published_comparison(const std::vector<RecallRow>& rows);

// The report section: plots, the two tables and a paragraph saying what was compared.
void add_recall_section(Database& database, const Filter& filter, const std::string& axis, Section& section,
                        const std::function<void(const PlotSpec&, const ColourMap&, Section&)>& draw,
                        const std::function<void(const Table&, const std::string&)>& write_table);

}  // namespace mixlab::reports
