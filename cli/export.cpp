// `mixlab export SOURCE --out DIR [--names mixlab|hf]`: a trained point, a checkpoint or a model
// file as DIR/model.safetensors + DIR/config.json (docs/weights.md, "Export and import").
//
//   mixlab export results/runs/<point id> --out qwen-small --names hf
//   mixlab export --point <point id> --run-root results/q.runs --out m/ --reference-logits
//
// SOURCE is a run folder (its checkpoint.safetensors), a checkpoint, or a model file or folder
// (either layout).  --names hf writes the Hugging Face layout of the matching architecture
// (harness/hf_layout.h); --reference-logits also writes DIR/reference_logits.safetensors
// (input_ids [2, 32] int64, logits [2, 32, vocab] float32 from mixlab's forward) for a
// comparison with `transformers` (bench/peers/hf_logits_check.py).

#include "cli/command.h"
#include "harness/config.h"
#include "harness/model_file.h"

#include <filesystem>
#include <iostream>

namespace mixlab::cli {
namespace {

struct ExportCommandOptions {
  std::string source;
  std::string point;
  std::string run_root = "results/runs";
  std::string out;
  ExportOptions file;
  bool reference_logits = false;
};

void write_reference_logits(LanguageModelImpl& model, const std::string& dir) {
  torch::manual_seed(0);
  const auto input_ids = torch::randint(model.config().vocab_size, {2, 32}, torch::kInt64);  // [2, 32]
  torch::NoGradGuard no_grad;
  model.eval();
  const auto logits = model.forward(input_ids).to(torch::kFloat32);  // [2, 32, vocab]
  write_safetensors((std::filesystem::path(dir) / "reference_logits.safetensors").string(),
                    {{"input_ids", input_ids}, {"logits", logits}}, {{"format", "pt"}});
}

int run_export(const ExportCommandOptions& o) {
  if (o.source.empty() == o.point.empty())
    throw ConfigError("export", "", "give exactly one of SOURCE (a run folder, checkpoint or model file) or --point ID");
  const std::string source = o.point.empty() ? o.source : (std::filesystem::path(o.run_root) / o.point).string();
  json model_json = model_json_of(source);
  model_json.erase("init_from");  // the weights are the file's own now
  const ModelConfig config = parse_model_config(model_json, model_weights_file(source), "mixlab_model");
  LanguageModel model(config);
  load_module_tensors(*model, read_model_weights(source, config), model_weights_file(source));
  const std::string architecture = export_model(*model, model_json, o.out, o.file);
  if (o.reference_logits) write_reference_logits(*model, o.out);
  std::cout << "exported " << model_label(model_json) << " (" << model->parameter_count() << " parameters, "
            << (architecture.empty() ? "mixlab names" : architecture + " layout") << ", " << o.file.dtype << ") from "
            << model_weights_file(source) << " to " << o.out << "/model.safetensors + config.json"
            << (o.reference_logits ? " + reference_logits.safetensors" : "") << "\n";
  return 0;
}

}  // namespace

MIXLAB_REGISTER_COMMAND(export, "write a trained point, checkpoint or model file as model.safetensors + config.json",
                        [](CLI::App& app) -> Action {
                          auto o = std::make_shared<ExportCommandOptions>();
                          app.add_option("source", o->source,
                                         "run folder (RUN_ROOT/<point id>), checkpoint.safetensors, or model file/folder");
                          app.add_option("--point", o->point, "point id: SOURCE is RUN_ROOT/ID");
                          app.add_option("--run-root", o->run_root, "folder of the per-point run folders");
                          app.add_option("--out", o->out, "folder to write model.safetensors and config.json into")
                              ->required();
                          app.add_option("--names", o->file.names, "weight names: mixlab, or hf (Qwen2/Llama/Mamba layout)")
                              ->check(CLI::IsMember({"mixlab", "hf"}));
                          app.add_option("--hf-arch", o->file.hf_arch, "HF architecture of an attention stack: qwen2 or llama")
                              ->check(CLI::IsMember({"qwen2", "llama"}));
                          app.add_option("--dtype", o->file.dtype, "dtype of the written weights")
                              ->check(CLI::IsMember({"float32", "bfloat16", "float16", "float64"}));
                          app.add_flag("--reference-logits", o->reference_logits,
                                       "also write reference_logits.safetensors (input_ids, logits) for a transformers check");
                          return [o] { return run_export(*o); };
                        });

}  // namespace mixlab::cli
