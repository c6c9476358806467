#pragma once
// The repository's own files, as the layering and citation checks read them: every regular file
// under MIXLAB_SOURCE_DIR except hidden folders (.git, .cache), build folders (build, build-fuzz,
// build-gpu, …) and the local results/ folder the quickstart writes.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace mixlab::source_tree {

inline std::filesystem::path root() { return MIXLAB_SOURCE_DIR; }

inline bool skipped_folder(const std::filesystem::path& relative) {
  const std::string name = relative.filename().string();
  const bool top_level = relative.parent_path().empty();
  return name.empty() || name[0] == '.' || name.rfind("build", 0) == 0 || name == "__pycache__" ||
         (top_level && name == "results");
}

// Paths relative to the root, with '/' separators, sorted.
inline std::vector<std::string> files() {
  namespace fs = std::filesystem;
  std::vector<std::string> found;
  for (auto it = fs::recursive_directory_iterator(root()); it != fs::recursive_directory_iterator(); ++it) {
    const fs::path relative = fs::relative(it->path(), root());
    if (it->is_directory()) {
      if (skipped_folder(relative)) it.disable_recursion_pending();
    } else if (it->is_regular_file()) {
      found.push_back(relative.generic_string());
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

inline std::string read(const std::string& relative) {
  std::ifstream in(root() / relative, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "mixers/cuda/kernels.h" -> "mixers"; a file at the root -> "".
inline std::string top_folder(const std::string& relative) {
  const auto slash = relative.find('/');
  return slash == std::string::npos ? "" : relative.substr(0, slash);
}

inline bool has_extension(const std::string& path, const std::vector<std::string>& extensions) {
  return std::any_of(extensions.begin(), extensions.end(), [&](const std::string& extension) {
    return path.size() > extension.size() && path.compare(path.size() - extension.size(), extension.size(), extension) == 0;
  });
}

// C++ and CUDA sources and headers.
inline bool is_source(const std::string& path) {
  return has_extension(path, {".cpp", ".h", ".hpp", ".cu", ".cuh"});
}

// Findings one per line, for a failure message.
inline std::string lines(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) text += item + "\n";
  return text;
}

}  // namespace mixlab::source_tree
