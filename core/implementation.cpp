#include "core/implementation.h"

namespace mixlab {
namespace {
thread_local ImplementationLog* active_log = nullptr;
}  // namespace

ImplementationLog::ImplementationLog() : outer_(active_log) { active_log = this; }
ImplementationLog::~ImplementationLog() { active_log = outer_; }

void record_implementation(const char* op, Implementation which) {
  if (active_log == nullptr) return;
  active_log->seen_[op] |= which == Implementation::kernel ? 1u : 2u;
}

std::string ImplementationLog::summary() const {
  if (seen_.empty()) return "library";
  std::string text;
  for (const auto& [op, bits] : seen_) {
    if (!text.empty()) text += ", ";
    text += op + "=" + (bits == 1u ? "kernel" : bits == 2u ? "reference" : "kernel+reference");
  }
  return text;
}

}  // namespace mixlab
