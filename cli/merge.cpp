// `mixlab merge A.db B.db ... -o all.db`: join shard databases without duplicates.  A point in
// several inputs is kept once (a done one over an unfinished one, then the later finish);
// merging the same input twice changes nothing.

#include "cli/command.h"
#include "harness/config.h"
#include "harness/store.h"

#include <filesystem>

#include <iostream>

namespace mixlab::cli {
namespace {

struct MergeOptions {
  std::vector<std::string> inputs;
  std::string output;
};

int run_merge(const MergeOptions& o) {
  if (o.output.empty()) throw ConfigError("merge", "", "--out MERGED.db is required");
  // Check every input before the output is created or touched: each must be a mixlab database
  // (opened read-only, so a foreign file is never altered) and none may be the output.
  for (const auto& input : o.inputs) {
    std::error_code error;
    if (std::filesystem::equivalent(input, o.output, error))
      throw ConfigError(input, "", "is also the output (-o " + o.output + "); merge into a new file");
    const Store checked(input, Store::Mode::read_only);
  }
  Store out(o.output);
  for (const auto& input : o.inputs) {
    const int64_t taken = out.merge_from(input);
    std::cout << input << ": " << taken << " point" << (taken == 1 ? "" : "s") << " taken\n";
  }
  Statement count(out.handle(), "SELECT COUNT(*), SUM(status = 'done') FROM points");
  count.step();
  std::cout << o.output << ": " << count.integer(0) << " points, " << count.integer(1) << " done\n";
  return 0;
}

}  // namespace

MIXLAB_REGISTER_COMMAND(merge, "join results databases (e.g. sweep shards) without duplicates",
                        [](CLI::App& app) -> Action {
                          auto o = std::make_shared<MergeOptions>();
                          app.add_option("inputs", o->inputs, "databases to merge")->required()->check(CLI::ExistingFile);
                          app.add_option("--out", o->output, "the merged database (created if missing; required)");
                          add_hidden_alias(app, "-o,--output", o->output);
                          return [o] { return run_merge(*o); };
                        });

}  // namespace mixlab::cli
