// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/failure.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <filesystem>
#include <new>
#include <nlohmann/json.hpp>
#include <system_error>

#include "core/store/sqlite.h"
#include "core/util/error.h"

namespace mmlab {

namespace {

constexpr char kDebugHint[] =
    "Run it again with MMLAB_DEBUG=1 to see the details, and report them if the cause is not "
    "yours.";

}  // namespace

bool debug_enabled() {
  const char* v = std::getenv("MMLAB_DEBUG");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

std::string describe_failure(const std::exception& e, const std::string& doing) {
  if (dynamic_cast<const UserError*>(&e) != nullptr) return e.what();
  if (const auto* fe = dynamic_cast<const std::filesystem::filesystem_error*>(&e)) {
    // The path and the system's reason are what the user needs; the library's wording is not.
    std::string what = "A file operation failed while " + doing;
    if (!fe->path1().empty()) what += " on " + fe->path1().string();
    return what + ": " + fe->code().message() + ". Check that the path exists and is writable.";
  }
  if (const auto* se = dynamic_cast<const std::system_error*>(&e)) {
    return "A system call failed while " + doing + ": " + se->code().message() + ". " + kDebugHint;
  }
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) {
    return "Out of memory while " + doing + ". Use a smaller model or batch, or free memory.";
  }
  if (dynamic_cast<const c10::Error*>(&e) != nullptr) {
    return "The tensor library failed while " + doing + ". " + kDebugHint;
  }
  if (dynamic_cast<const store::StoreError*>(&e) != nullptr) {
    return "The results database failed while " + doing + ". " + kDebugHint;
  }
  if (dynamic_cast<const nlohmann::json::exception*>(&e) != nullptr) {
    return "Reading JSON failed while " + doing + ". " + kDebugHint;
  }
  return "An internal error stopped mmlab while " + doing + ". " + kDebugHint;
}

}  // namespace mmlab
